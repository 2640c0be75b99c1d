"""Short load runs against `connectome serve` in a subprocess: concurrent clients get no error;
with one client sending the most expensive requests the API allows (a Cypher answer just under
its byte cap, a GraphQL query just under its cost cap, a whole-dataset export), every request
still succeeds and `/health` never stalls.

The full run (50 clients x 60 s, a /health baseline, load average) is `bench/load/run.py`.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from connectome_query.graphdb.settings import Neo4jTarget
from tests.support.celegans import cook_edges
from tests.support.load import Heavy, neuron_names, run_load, served_api

pytestmark = [pytest.mark.neo4j, pytest.mark.slow]

CLIENTS = int(os.environ.get("CONNECTOME_LOAD_CLIENTS", "10"))
SECONDS = float(os.environ.get("CONNECTOME_LOAD_SECONDS", "10"))
CYPHER_BYTES = 4_000_000


def test_short_load_has_no_errors(neo4j_target: Neo4jTarget, celegans: dict) -> None:
    with served_api(neo4j_target, env={"CONNECTOME_AUTH": "off"}) as api:
        names = neuron_names(api.url, "cook2019")
        raw = cook_edges()
        assert set(names) <= set(raw["Source"]) | set(raw["Target"])
        result = asyncio.run(run_load(api.url, "cook2019", names, clients=CLIENTS,
                                      seconds=SECONDS))
    print(f"\nload: {result.line()}")
    assert result.errors == 0, result.error_samples[:5]
    assert result.requests >= CLIENTS


def _heavy(dataset: str) -> list[Heavy]:
    rows = 20_000
    pad = "x" * (CYPHER_BYTES // rows - 20)
    return [
        ("POST", "/api/custom/custom", {"json": {
            "cypher": f"UNWIND range(1, {rows}) AS i RETURN i, '{pad}' AS pad"}}),
        ("POST", "/graphql", {"json": {"query": """query($d: String!) { neurons(dataset: $d,
            first: 300) { edges { node { bodyId instance type upstream(first: 30) { weight
            partner { instance type } } } } } }""", "variables": {"d": dataset}}}),
        ("GET", "/export/matrix", {"params": {"dataset": dataset, "format": "parquet"}}),
    ]


def test_a_heavy_client_does_not_stall_the_others(neo4j_target: Neo4jTarget,
                                                  celegans: dict) -> None:
    """Clients pausing ~0.5 s between reads and a /health probe, the same run without and with
    the heavy client. A heavy answer built or serialised on the event loop would hold every
    /health probe for as long as it takes (15 s for a 59 MB answer before); the bound is
    relative to the same run's probes without it, since the machine may be busy. Latency
    figures (p99 under 1 s at 50 clients) are bench/load's."""
    env = {"CONNECTOME_AUTH": "off", "CONNECTOME_CYPHER_MAX_BYTES": str(CYPHER_BYTES)}
    with served_api(neo4j_target, env=env) as api:
        names = neuron_names(api.url, "cook2019")
        alone = asyncio.run(run_load(api.url, "cook2019", names, clients=CLIENTS,
                                     seconds=SECONDS, think=0.5, probe=True))
        loaded = asyncio.run(run_load(api.url, "cook2019", names, clients=CLIENTS,
                                      seconds=SECONDS, think=0.5, probe=True,
                                      heavy=_heavy("cook2019")))
    print(f"\nwithout the heavy client: {alone.line()}\nwith it: {loaded.line()}")
    assert alone.errors == 0 and loaded.errors == 0, loaded.error_samples[:5]
    assert len(loaded.heavy) >= 3 and {s for s, _ in loaded.heavy} == {200}, loaded.heavy
    longest_heavy = max(t for _, t in loaded.heavy)
    stall = max(loaded.health)
    assert stall < max(2.0, 4 * max(alone.health)), (
        f"/health waited {stall:.2f} s beside heavy requests of up to {longest_heavy:.2f} s")
