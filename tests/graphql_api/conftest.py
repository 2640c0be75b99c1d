"""API clients bound to the session's real Neo4j server: auth off (C. elegans loaded), and auth
required over a public and a private synthetic dataset with a token file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import neo4j
import networkx as nx
import pytest
from fastapi.testclient import TestClient

from connectome_query.graphdb.catalog import set_public
from connectome_query.graphdb.settings import Neo4jTarget
from connectome_query.graphql_api.app import create_app
from connectome_query.graphql_api.auth import AuthConfig, TokenStore
from connectome_query.ingest.loader import load
from connectome_query.ingest.sources import read_source
from tests.support.graphql import PRIVATE, PUBLIC, GraphQLClient
from tests.support.neuprint_files import write_neuprint


@pytest.fixture(scope="session")
def gql(neo4j_target: Neo4jTarget, celegans: dict) -> Iterator[GraphQLClient]:
    with TestClient(create_app(neo4j_target)) as client:
        yield GraphQLClient(client)


@pytest.fixture(scope="session")
def sec_data(driver: neo4j.Driver, tmp_path_factory: pytest.TempPathFactory,
             ) -> dict[str, nx.DiGraph]:
    """Two small datasets; PUBLIC has Meta.public = true, PRIVATE has not."""
    graphs = {}
    for i, name in enumerate((PUBLIC, PRIVATE)):
        folder = tmp_path_factory.mktemp(name)
        graphs[name] = write_neuprint(folder, neurons=60, edges=300, gap=40, seed=100 + i)
        load(driver, read_source(str(folder)), name)
    set_public(driver, PUBLIC, True)
    set_public(driver, PRIVATE, False)
    return graphs


@pytest.fixture(scope="session")
def tokens_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tokens") / "tokens.json"


@pytest.fixture(scope="session")
def store(tokens_file: Path) -> TokenStore:
    return TokenStore(tokens_file)


@pytest.fixture(scope="session")
def secure_api(neo4j_target: Neo4jTarget, sec_data: dict,
               tokens_file: Path) -> Iterator[GraphQLClient]:
    """The API with auth required (no rate limit, so tests can hammer it)."""
    app = create_app(neo4j_target, auth=AuthConfig(required=True, tokens_file=tokens_file))
    with TestClient(app) as client:
        yield GraphQLClient(client)


@pytest.fixture(scope="session")
def open_api(neo4j_target: Neo4jTarget, sec_data: dict) -> Iterator[GraphQLClient]:
    """The API with auth off (the default), so the Cypher endpoint is open."""
    with TestClient(create_app(neo4j_target, auth=AuthConfig(required=False))) as client:
        yield GraphQLClient(client)
