"""Running read-only Cypher for the API: parameters only, a timeout, clear errors."""

from __future__ import annotations

from typing import Any

import neo4j
from neo4j.exceptions import ClientError, Neo4jError, ServiceUnavailable

from connectome_query.graphql_api.errors import QueryError

DEFAULT_TIMEOUT_S = 30.0


async def read(
    driver: neo4j.AsyncDriver,
    cypher: str,
    params: dict[str, Any],
    *,
    database: str = "neo4j",
    timeout: float = DEFAULT_TIMEOUT_S,
) -> list[dict[str, Any]]:
    """Run `cypher` in a read transaction; every user value arrives through `params`."""
    @neo4j.unit_of_work(timeout=timeout)
    async def work(tx: neo4j.AsyncManagedTransaction) -> list[dict[str, Any]]:
        result = await tx.run(cypher, params)
        return [record.data() for record in await result.fetch(10**9)]

    try:
        async with driver.session(database=database,
                                  default_access_mode=neo4j.READ_ACCESS) as session:
            return await session.execute_read(work)
    except ClientError as exc:
        code = exc.code or ""
        if "TransactionTimedOut" in code or "Terminated" in code:
            raise QueryError(
                f"the query ran longer than its {timeout:.0f} s limit; narrow it "
                "(a higher minWeight, fewer neurons, or a smaller page)"
            ) from None
        raise
    except ServiceUnavailable:
        raise QueryError("the graph database is not reachable right now; try again") from None
    except Neo4jError:
        raise
