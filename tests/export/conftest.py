"""Fixtures for export tests: the synthetic dataset loaded through the real loader, and an API
client over the session's server."""

from __future__ import annotations

from collections.abc import Iterator

import neo4j
import pytest
from fastapi.testclient import TestClient

from connectome_query.graphdb.settings import Neo4jTarget
from tests.support.export_synth import SYNTH, SynthSet, make_synth, synth_tables


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory, driver: neo4j.Driver) -> SynthSet:
    from connectome_query.ingest.loader import load

    data = make_synth(tmp_path_factory.mktemp("export-synth"))
    load(driver, synth_tables(data), SYNTH)
    return data


@pytest.fixture(scope="session")
def api(neo4j_target: Neo4jTarget, celegans: dict, synth: SynthSet) -> Iterator[TestClient]:
    from connectome_query.graphql_api.app import create_app

    with TestClient(create_app(neo4j_target)) as client:
        yield client
