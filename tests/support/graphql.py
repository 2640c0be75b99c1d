"""A GraphQL client over an in-process app, and the datasets of the authorisation tests."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi.testclient import TestClient

PUBLIC = "t_sec_public"
"""A small dataset with `Meta.public = true`."""
PRIVATE = "t_sec_private"
"""Its private twin."""


class GraphQLClient:
    """POSTs queries to `/graphql`, with a bearer token when one is given."""

    def __init__(self, client: TestClient) -> None:
        self.http = client

    def post(self, query: str, token: str | None = None, **variables: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.post("/graphql", json={"query": query, "variables": variables},
                              headers=headers)

    def gql(self, query: str, token: str | None = None, **variables: Any) -> dict[str, Any]:
        """The JSON answer (HTTP 200 asserted), errors included."""
        response = self.post(query, token, **variables)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def __call__(self, query: str, **variables: Any) -> dict[str, Any]:
        return self.gql(query, None, **variables)

    def data(self, query: str, **variables: Any) -> dict[str, Any]:
        """`data` of an answer that must have no errors."""
        body = self(query, **variables)
        assert "errors" not in body, body["errors"]
        return dict(body["data"])
