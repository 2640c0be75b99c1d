"""Running read-only Cypher for the API: parameters only, a timeout, errors the user can act on.

The transaction and the failure classes are graphdb's (shared with export); this module words
them as `QueryError`s, which GraphQL shows as they are. `SyncDriver` is the synchronous driver
that the work done in worker threads (export, the Cypher endpoint) shares.
"""

from __future__ import annotations

import threading
from typing import Any

import neo4j

from connectome_query.graphdb.driver import open_driver
from connectome_query.graphdb.reads import (
    GraphUnreachable,
    ReadOutOfMemory,
    ReadTimedOut,
    read_rows,
)
from connectome_query.graphdb.settings import ApiSettings, Neo4jTarget, from_env
from connectome_query.graphql_api.errors import QueryError

DEFAULT_TIMEOUT_S = 30.0
UNREACHABLE = "the graph database is not reachable right now; try again"


def query_timeout() -> float:
    """Seconds a circuit query may run (CONNECTOME_QUERY_TIMEOUT_S, default 30)."""
    return from_env(ApiSettings).query_timeout_s


async def read(
    driver: neo4j.AsyncDriver,
    cypher: str,
    params: dict[str, Any],
    *,
    database: str = "neo4j",
    timeout: float = DEFAULT_TIMEOUT_S,
) -> list[dict[str, Any]]:
    """Run `cypher` in a read transaction; every user value arrives through `params`."""
    try:
        return await read_rows(driver, cypher, params, database=database, timeout=timeout)
    except ReadTimedOut:
        raise QueryError(
            f"the query ran longer than its {timeout:.0f} s limit; narrow it "
            "(a higher minWeight, fewer neurons, or a smaller page)", code="timeout"
        ) from None
    except ReadOutOfMemory:
        raise QueryError("the query needed more memory than the server gives one query; "
                         "narrow it (fewer neurons, a higher minWeight, a smaller page)",
                         code="too_large") from None
    except GraphUnreachable:
        raise QueryError(UNREACHABLE, code="unavailable") from None


class SyncDriver:
    """A synchronous driver to `target` (default: the settings' server), opened on first use
    and closed with the app."""

    def __init__(self, target: Neo4jTarget | None) -> None:
        self.target = target
        self._driver: neo4j.Driver | None = None
        self._lock = threading.Lock()

    def get(self) -> neo4j.Driver:
        with self._lock:
            if self._driver is None:
                self._driver = open_driver(self.target)
            return self._driver

    def close(self) -> None:
        with self._lock:
            if self._driver is not None:
                self._driver.close()
                self._driver = None
