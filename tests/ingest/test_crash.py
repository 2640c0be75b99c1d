"""Ingest survives kill -9 of itself and of Neo4j: rerun, and the graph equals a clean load; a
kill -9 of the API during a load loses nothing either, and the restarted API serves it whole.

A few trials by default; more with `CONNECTOME_CRASH_TRIALS` (kills of the ingest, default 3),
`CONNECTOME_CRASH_NEO4J_TRIALS` (kills of Neo4j, default 1) and `CONNECTOME_CRASH_API_TRIALS`
(kills of the API, default 1). The expected graph comes from the generator (networkx), not from
Neo4j.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import neo4j
import networkx as nx
import pytest

from connectome_query.graphdb.local_server import LocalNeo4j
from connectome_query.graphdb.settings import LocalServerConfig, Neo4jTarget, cache_dir
from tests.support.crash import (
    TrialResult,
    kill_ingest_trial,
    kill_neo4j_trial,
    kill_points,
    timed_clean_ingest,
)
from tests.support.crash_api import kill_api_trial
from tests.support.fingerprint import expected_fingerprint, fingerprint
from tests.support.net import free_port
from tests.support.neuprint_files import write_neuprint
from tests.support.readback import edges_of

pytestmark = [pytest.mark.neo4j, pytest.mark.slow]

TRIALS = int(os.environ.get("CONNECTOME_CRASH_TRIALS", "3"))
NEO4J_TRIALS = int(os.environ.get("CONNECTOME_CRASH_NEO4J_TRIALS", "1"))
API_TRIALS = int(os.environ.get("CONNECTOME_CRASH_API_TRIALS", "1"))
BATCH = 300
DATASET = "t_crash"


@pytest.fixture(scope="module")
def crash_graph(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, nx.DiGraph]:
    folder = tmp_path_factory.mktemp("crash")
    return folder, write_neuprint(folder, neurons=800, edges=6000, gap=800, seed=7)


@pytest.fixture(scope="module")
def crash_data(crash_graph: tuple[Path, nx.DiGraph]) -> tuple[Path, dict[str, Any]]:
    folder, g = crash_graph
    return folder, expected_fingerprint(g)


@pytest.fixture(scope="module")
def clean_seconds(driver: neo4j.Driver, neo4j_target: Neo4jTarget,
                  crash_data: tuple[Path, dict[str, Any]]) -> float:
    """A clean load through the CLI: it must match the generator. Returns how long it spent
    writing (from its first write to exit), the window the kills are spread over."""
    folder, expected = crash_data
    seconds, writing = timed_clean_ingest(driver, neo4j_target, folder, DATASET, BATCH)
    found = fingerprint(driver, DATASET)
    assert {k: found[k] for k in expected} == expected
    print(f"\nclean load through the CLI: {seconds:.1f} s, {writing:.1f} s of it writing")
    assert writing > 0.5, "the write phase is too short to aim kills at"
    return writing


def _report(results: list[TrialResult]) -> str:
    mid = sum(r.status_after_kill == "loading" for r in results)
    return (f"{results[0].kind}: trials={len(results)} killed-mid-load={mid} "
            f"data-lost={sum(r.lost for r in results)} "
            f"duplicates/leftovers={sum(r.extra for r in results)} "
            f"failed={sum(not r.ok for r in results)}")


def _wipe(driver: neo4j.Driver, dataset: str) -> None:
    """Every version of `dataset` gone, so the next load is its first."""
    driver.execute_query("MATCH (n) WHERE n.dataset = $d OR n.dataset STARTS WITH $d + '@' "
                         "DETACH DELETE n", d=dataset)


def test_kill_ingest_then_rerun(driver: neo4j.Driver, neo4j_target: Neo4jTarget,
                                crash_data: tuple[Path, dict[str, Any]],
                                clean_seconds: float) -> None:
    folder, expected = crash_data
    rng = random.Random(int(os.environ.get("CONNECTOME_CRASH_SEED", "1")))
    results = []
    for i, after in enumerate(kill_points(rng, TRIALS, 0.0, 1.0)):
        if i % 2 == 0:
            _wipe(driver, DATASET)  # half the trials crash a first load, half a reload
        results.append(kill_ingest_trial(driver, neo4j_target, folder, DATASET, expected,
                                         after, BATCH))
        print(f"\n  kill at {after:.0%} of rows written: status {results[-1].status_after_kill}")
    print("\n" + _report(results))
    assert all(r.ok for r in results), [r.problems for r in results if not r.ok]
    assert any(r.status_after_kill == "loading" for r in results), \
        "no kill landed mid-load: the trial proves nothing"


def test_kill_api_during_a_load_then_restart(driver: neo4j.Driver, neo4j_target: Neo4jTarget,
                                             crash_graph: tuple[Path, nx.DiGraph],
                                             crash_data: tuple[Path, dict[str, Any]],
                                             clean_seconds: float) -> None:
    """Clients read the dataset through the API while it is reloaded; the API is killed
    mid-load and started again. The reload finishes by itself and every answer, before, during
    and after, is the generator's graph."""
    folder, expected = crash_data
    g = crash_graph[1]
    answers = {"ids": {int(n) for n in g.nodes}, "total": g.number_of_nodes(),
               "matrix": edges_of(g)}
    rng = random.Random(int(os.environ.get("CONNECTOME_CRASH_SEED", "1")) + 2)
    results = []
    for after in kill_points(rng, API_TRIALS, 0.1, 0.9):
        results.append(kill_api_trial(driver, neo4j_target, folder, DATASET, expected, answers,
                                      after, BATCH))
        print(f"\n  kill at {after:.0%} of rows written: status {results[-1].status_after_kill}")
    print("\n" + _report(results))
    assert all(r.ok for r in results), [r.problems for r in results if not r.ok]
    assert any(r.status_after_kill == "loading" for r in results), \
        "no kill landed mid-load: the trial proves nothing"


@pytest.fixture(scope="module")
def crash_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[LocalNeo4j]]:
    """A separate Neo4j the trial may kill (never the session's shared server)."""
    config = LocalServerConfig(home=tmp_path_factory.mktemp("neo4j-crash"), cache=cache_dir(),
                               bolt_port=free_port(), heap="512m", pagecache="256m")
    servers = [LocalNeo4j(config)]
    servers[0].start(timeout=240)
    try:
        yield servers
    finally:
        servers[-1].stop()


def test_kill_neo4j_then_restart_and_rerun(crash_server: list[LocalNeo4j],
                                           crash_data: tuple[Path, dict[str, Any]],
                                           clean_seconds: float) -> None:
    folder, expected = crash_data
    rng = random.Random(int(os.environ.get("CONNECTOME_CRASH_SEED", "1")) + 1)
    results = []
    for after in kill_points(rng, NEO4J_TRIALS, 0.1, 0.9):
        result, restarted = kill_neo4j_trial(crash_server[-1], folder, DATASET, expected, after,
                                             BATCH)
        crash_server.append(restarted)
        results.append(result)
        print(f"\n  ingest exit {result.ingest_exit}, clear message: "
              f"{result.ingest_message_clear}")
    print("\n" + _report(results))
    assert all(r.ok for r in results), [r.problems for r in results if not r.ok]
