"""A public and a private synthetic dataset, a token file, and an API with auth required."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import neo4j
import networkx as nx
import pytest
from fastapi.testclient import TestClient

from connectome_query.graphdb.settings import Neo4jTarget
from connectome_query.graphql_api.app import create_app
from connectome_query.graphql_api.auth import AuthConfig, TokenStore
from connectome_query.ingest.loader import load
from connectome_query.ingest.sources import read_source
from tests.reliability.datagen import write_neuprint

PUBLIC = "t_sec_public"
PRIVATE = "t_sec_private"


@pytest.fixture(scope="session")
def sec_data(driver: neo4j.Driver, tmp_path_factory: pytest.TempPathFactory,
             ) -> dict[str, nx.DiGraph]:
    """Two small datasets; PUBLIC has Meta.public = true, PRIVATE has not."""
    graphs = {}
    for i, name in enumerate((PUBLIC, PRIVATE)):
        folder = tmp_path_factory.mktemp(name)
        graphs[name] = write_neuprint(folder, neurons=60, edges=300, gap=40, seed=100 + i)
        load(driver, read_source(str(folder)), name)
    driver.execute_query("MATCH (m:Meta {dataset: $d}) SET m.public = true", d=PUBLIC)
    driver.execute_query("MATCH (m:Meta {dataset: $d}) SET m.public = false", d=PRIVATE)
    return graphs


@pytest.fixture(scope="session")
def tokens_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tokens") / "tokens.json"


@pytest.fixture(scope="session")
def store(tokens_file: Path) -> TokenStore:
    return TokenStore(tokens_file)


class Api:
    """HTTP client with an optional bearer token."""

    def __init__(self, client: TestClient) -> None:
        self.http = client

    def post(self, query: str, token: str | None = None, **variables: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.post("/graphql", json={"query": query, "variables": variables},
                              headers=headers)

    def gql(self, query: str, token: str | None = None, **variables: Any) -> dict[str, Any]:
        response = self.post(query, token, **variables)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="session")
def secure_api(neo4j_target: Neo4jTarget, sec_data: dict, tokens_file: Path) -> Iterator[Api]:
    """The API with auth required (no rate limit, so tests can hammer it)."""
    app = create_app(neo4j_target, auth=AuthConfig(required=True, tokens_file=tokens_file))
    with TestClient(app) as client:
        yield Api(client)


@pytest.fixture(scope="session")
def open_api(neo4j_target: Neo4jTarget, sec_data: dict) -> Iterator[Api]:
    """The API with auth off (the default), so the Cypher endpoint is open."""
    with TestClient(create_app(neo4j_target, auth=AuthConfig(required=False))) as client:
        yield Api(client)
