"""A short load run (10 clients x 10 s) against `connectome serve` in a subprocess: 0 errors.

The full run (50 clients x 60 s, latency percentiles, a /health baseline) is `bench/load/run.py`.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from connectome_query.graphdb.settings import Neo4jTarget
from tests.support.celegans import cook_edges
from tests.support.load import neuron_names, run_load, served_api

pytestmark = [pytest.mark.neo4j, pytest.mark.slow]

CLIENTS = int(os.environ.get("CONNECTOME_LOAD_CLIENTS", "10"))
SECONDS = float(os.environ.get("CONNECTOME_LOAD_SECONDS", "10"))


def test_short_load_has_no_errors(neo4j_target: Neo4jTarget, celegans: dict) -> None:
    with served_api(neo4j_target, env={"CONNECTOME_AUTH": "off"}) as api:
        url = api.url
        names = neuron_names(url, "cook2019")
        raw = cook_edges()
        assert set(names) <= set(raw["Source"]) | set(raw["Target"])
        result = asyncio.run(run_load(url, "cook2019", names, clients=CLIENTS,
                                      seconds=SECONDS))
    print(f"\nload: {result.line()}")
    assert result.errors == 0, result.error_samples[:5]
    assert result.requests >= CLIENTS
