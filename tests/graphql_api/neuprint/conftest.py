"""`connectome serve --tls` in a process of its own, over the session's Neo4j, with C. elegans,
a dataset from navis' hemibrain neurons (synapses and skeletons), a dataset loaded twice, and a
synthetic reconstruction's run directory (loaded by the tests that read it)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import neo4j
import networkx as nx
import pytest

from connectome_query.graphdb.settings import Neo4jTarget, cache_dir
from connectome_query.graphql_api.tls import CERT_FILE
from connectome_query.ingest.loader import load
from connectome_query.ingest.skeletons import load_skeletons
from connectome_query.ingest.sources import read_source
from tests.support.hemibrain import VOXEL_NM, Hemibrain, write_hemibrain
from tests.support.net import free_port
from tests.support.neuprint_files import write_neuprint
from tests.support.neuprint_server import HEMIBRAIN, RECONSTRUCTION, VERSIONED, Served


@pytest.fixture(scope="session")
def hemibrain(driver: neo4j.Driver, tmp_path_factory: pytest.TempPathFactory) -> Hemibrain:
    data = write_hemibrain(tmp_path_factory.mktemp("hemibrain"))
    load(driver, read_source(str(data.table), voxel_size=(VOXEL_NM,) * 3), HEMIBRAIN)
    load_skeletons(driver, HEMIBRAIN, data.swc_dir)
    return data


@pytest.fixture(scope="session")
def versions(driver: neo4j.Driver, tmp_path_factory: pytest.TempPathFactory,
             ) -> list[nx.DiGraph]:
    """VERSIONED loaded twice from two different draws: version 1, then version 2."""
    graphs = []
    for seed in (1, 2):
        folder = tmp_path_factory.mktemp(f"versions{seed}")
        graphs.append(write_neuprint(folder, neurons=40, edges=150 * seed, gap=10, seed=seed))
        load(driver, read_source(str(folder)), VERSIONED)
    return graphs


def _connectome(target: Neo4jTarget, *args: str) -> None:
    """One `connectome` command in a process of its own (the reconstruction's Dask workers and
    libraries stay out of the test process); its output in the failure message."""
    env = {**os.environ, "NEO4J_URI": target.uri, "NEO4J_USER": target.user,
           "NEO4J_PASSWORD": target.password}
    done = subprocess.run([sys.executable, "-m", "connectome_query.cli", *args], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"connectome {' '.join(args)}:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="session")
def reconstruction(neo4j_target: Neo4jTarget, tmp_path_factory: pytest.TempPathFactory,
                   ) -> Path:
    """A 64^3 synthetic volume reconstructed (one worker), the run directory ingested as
    RECONSTRUCTION and its skeletons stored; returns the run directory."""
    tmp = tmp_path_factory.mktemp("np-reconstruction")
    em, run = tmp / "em", tmp / "run"
    _connectome(neo4j_target, "synth-em", str(em), "--size", "64,64,64", "--seed", "0",
                "--voxel-size", "16,16,40", "--quiet")
    _connectome(neo4j_target, "reconstruct", str(em), str(run), "--workers", "1")
    _connectome(neo4j_target, "ingest", str(run), "-d", RECONSTRUCTION)
    _connectome(neo4j_target, "skeletons", str(run / "skeletons"), "--dataset", RECONSTRUCTION)
    return run


@pytest.fixture(scope="session")
def served(neo4j_target: Neo4jTarget, celegans: dict, hemibrain: Hemibrain,
           versions: list, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "NEO4J_URI": neo4j_target.uri, "NEO4J_USER": neo4j_target.user,
           "NEO4J_PASSWORD": neo4j_target.password, "CONNECTOME_AUTH": "off"}
    with log.open("w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "connectome_query.cli", "serve", "--tls",
                                 "--port", str(port)], stdout=sink, stderr=subprocess.STDOUT,
                                env=env)
    try:
        cert = cache_dir() / "tls" / CERT_FILE  # made by `serve --tls` on first use
        url = f"https://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if cert.is_file() and httpx.get(f"{url}/api/version",
                                                verify=str(cert)).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"connectome serve --tls did not start:\n{log.read_text()}")
            time.sleep(0.3)
        yield Served(url=url, cert=cert)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:  # open keep-alive connections hold up the shutdown
            proc.kill()
            proc.wait(timeout=15)
