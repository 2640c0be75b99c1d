"""Per-request context: the driver and database, the request's DataLoaders, and its reads.

Resolvers and loaders read through `ApiContext.read` (the neuron fields' timeout) or
`read_circuit` (`CONNECTOME_QUERY_TIMEOUT_S`), so every query of a request goes to the same
database through `graphql_api.db.read`.
"""

from __future__ import annotations

from typing import Any

import neo4j
from strawberry.fastapi import BaseContext

from connectome_query.graphql_api import db
from connectome_query.graphql_api.loaders import Loaders


class ApiContext(BaseContext):
    """What resolvers see as `info.context`."""

    def __init__(self, driver: neo4j.AsyncDriver, database: str = "neo4j") -> None:
        super().__init__()
        self.driver = driver
        self.database = database
        self.loaders = Loaders(self.read, self.read_circuit)

    async def read(self, cypher: str, params: dict[str, Any], *,
                   timeout: float = db.DEFAULT_TIMEOUT_S) -> list[dict[str, Any]]:
        """Rows of `cypher` in a read transaction on the request's database."""
        return await db.read(self.driver, cypher, params, database=self.database,
                             timeout=timeout)

    async def read_circuit(self, cypher: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """`read` with the circuit queries' time limit."""
        return await self.read(cypher, params, timeout=db.query_timeout())
