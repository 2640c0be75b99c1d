"""An API client bound to the session's real Neo4j server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from connectome_query.graphdb.settings import Neo4jTarget
from connectome_query.graphql_api.app import create_app


class GraphQLClient:
    def __init__(self, client: TestClient) -> None:
        self.http = client

    def __call__(self, query: str, **variables: Any) -> dict[str, Any]:
        response = self.http.post("/graphql", json={"query": query, "variables": variables})
        assert response.status_code == 200, response.text
        return response.json()

    def data(self, query: str, **variables: Any) -> dict[str, Any]:
        body = self(query, **variables)
        assert "errors" not in body, body["errors"]
        return body["data"]


@pytest.fixture(scope="session")
def gql(neo4j_target: Neo4jTarget, celegans: dict) -> Iterator[GraphQLClient]:
    with TestClient(create_app(neo4j_target)) as client:
        yield GraphQLClient(client)
