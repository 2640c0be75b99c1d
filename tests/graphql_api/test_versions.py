"""Nothing is served from a half-written version: while a reload of a dataset is part-way
through writing, every route (dataset list, neuron lookups and pages, matrix export) answers from
the previous version, whole; the new one is served only once its load is done."""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import neo4j
import networkx as nx
import pandas as pd
import pytest
from typer.testing import CliRunner

from connectome_query.cli.main import app
from connectome_query.graphdb import catalog
from connectome_query.ingest import loader
from connectome_query.ingest.sources import read_source
from tests.support.graphql import GraphQLClient
from tests.support.neuprint_files import write_neuprint
from tests.support.readback import edges_of, read_back

pytestmark = pytest.mark.neo4j

NAME = "t_half_written"


def served(api: GraphQLClient) -> dict[str, Any]:
    """What the API serves of NAME: its dataset entries, neuron ids, matrix and neuron table."""
    body = api.data("""query($d: String!) { datasets { name status neuronCount }
        neurons(dataset: $d, first: 1000) { edges { node { bodyId } } } }""", d=NAME)
    matrix = api.http.get("/export/matrix", params={"dataset": NAME, "format": "parquet",
                                                    "minWeight": 0})
    table = api.http.get("/export/neurons", params={"dataset": NAME, "format": "parquet"})
    assert matrix.status_code == 200 and table.status_code == 200, (matrix.text, table.text)
    return {
        "datasets": [d for d in body["datasets"] if d["name"] == NAME],
        "ids": {int(e["node"]["bodyId"]) for e in body["neurons"]["edges"]},
        "matrix": read_back("parquet", matrix.content)[0],
        "table": set(pd.read_parquet(io.BytesIO(table.content))["bodyId"].astype(int)),
    }


def expected(g: nx.DiGraph) -> dict[str, Any]:
    ids = {int(n) for n in g.nodes}
    return {"datasets": [{"name": NAME, "status": "complete", "neuronCount": len(ids)}],
            "ids": ids, "matrix": edges_of(g), "table": ids}


def test_a_load_in_progress_is_never_served(open_api: GraphQLClient, driver: neo4j.Driver,
                                            tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    old = write_neuprint(tmp_path / "old", neurons=40, edges=150, gap=10, seed=21)
    new = write_neuprint(tmp_path / "new", neurons=70, edges=260, gap=10, seed=22)
    loader.load(driver, read_source(str(tmp_path / "old")), NAME)
    assert served(open_api) == expected(old)

    paused, resume = threading.Event(), threading.Event()
    real = loader._write_batch
    calls = {"n": 0}

    def pausing(*args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:  # two batches are in the graph; hold the load here
            paused.set()
            assert resume.wait(300)
        real(*args, **kwargs)

    monkeypatch.setattr(loader, "_write_batch", pausing)
    with ThreadPoolExecutor(1) as pool:
        load = pool.submit(loader.load, driver, read_source(str(tmp_path / "new")), NAME,
                           batch_size=20)
        try:
            assert paused.wait(300), "the load never reached its third batch"
            current = catalog.resolve(driver, NAME)
            written, _, _ = driver.execute_query(
                "MATCH (n:Neuron) WHERE n.dataset STARTS WITH $name + '@' AND n.dataset <> $key "
                "RETURN count(n) AS n", name=NAME, key=current.key)
            assert written[0]["n"] > 0, "the half-written version holds nothing to leak"
            assert served(open_api) == expected(old)
            only_new = next(iter(set(new.nodes) - set(old.nodes)))
            missing = open_api.data("query($d: String!, $b: BodyId!) { neuron(dataset: $d, "
                                    "bodyId: $b) { bodyId } }", d=NAME, b=str(only_new))
            assert missing["neuron"] is None
        finally:
            resume.set()
        load.result(timeout=300)
    assert served(open_api) == expected(new)


PINNED = "t_pinned_circuits"


def _reciprocal(api: GraphQLClient, version: int | None) -> set[frozenset[int]]:
    body = api.data("""query($d: String!, $v: Int) {
        reciprocalPairs(dataset: $d, first: 1000, version: $v) {
          pairs { a { bodyId } b { bodyId } } pageInfo { hasNextPage } } }""",
                    d=PINNED, v=version)["reciprocalPairs"]
    assert not body["pageInfo"]["hasNextPage"]
    return {frozenset((int(p["a"]["bodyId"]), int(p["b"]["bodyId"]))) for p in body["pairs"]}


def _cell_types(api: GraphQLClient, version: int | None) -> dict[str, int]:
    body = api.data("query($d: String!, $v: Int) { cellTypes(dataset: $d, version: $v) "
                    "{ type neurons } }", d=PINNED, v=version)
    return {t["type"]: t["neurons"] for t in body["cellTypes"]}


def test_circuit_fields_answer_a_pinned_version_as_loaded(open_api: GraphQLClient,
                                                          driver: neo4j.Driver,
                                                          tmp_path: Path) -> None:
    graphs, versions = [], []
    for seed in (31, 32):
        folder = tmp_path / f"v{seed}"
        graphs.append((write_neuprint(folder, neurons=30 + seed - 31, edges=200, gap=5,
                                      seed=seed), folder))
        versions.append(loader.load(driver, read_source(str(folder)), PINNED).version)
    for version, (g, folder) in ((versions[0], graphs[0]), (versions[1], graphs[1]),
                                 (None, graphs[1])):
        assert _reciprocal(open_api, version) == {frozenset((a, b)) for a, b in g.edges
                                                  if g.has_edge(b, a)}
        types = pd.read_csv(folder / "neurons.csv")["type"].value_counts()
        assert _cell_types(open_api, version) == {t: int(n) for t, n in types.items()}
        pinned = {} if version is None else {"version": version}
        matrix = open_api.http.get("/export/matrix", params={
            "dataset": PINNED, "format": "parquet", "minWeight": 0, **pinned})
        assert matrix.status_code == 200, matrix.text
        assert read_back("parquet", matrix.content)[0] == edges_of(g)
        out = tmp_path / f"matrix{version}.parquet"
        done = CliRunner().invoke(app, ["export", "matrix", str(out), "-d", PINNED,
                                        "--min-weight", "0",
                                        *(["--version", str(version)] if version else [])])
        assert done.exit_code == 0, done.output
        assert read_back("parquet", out.read_bytes())[0] == edges_of(g)
    missing = versions[1] + 7
    body = open_api('query($d: String!, $v: Int) { cellTypes(dataset: $d, version: $v) '
                    '{ type } }', d=PINNED, v=missing)
    assert f"no complete version {missing}" in body["errors"][0]["message"]
