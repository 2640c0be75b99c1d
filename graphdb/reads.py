"""Read-only transactions with a time limit, for the API and for export.

Both run user-driven reads that may be slow, big, or meet a server that is down. The failures
that a caller turns into its own message (a GraphQL error, an HTTP status) are raised here as
`ReadTimedOut`, `ReadOutOfMemory` and `GraphUnreachable`; any other driver error passes through
unchanged. A read that ran out of memory is not retried: it would only run out again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import neo4j
from neo4j.exceptions import ClientError, ServiceUnavailable, SessionExpired, TransientError


class ReadFailed(Exception):
    """A read that did not complete for a reason the caller should explain to its user."""


class ReadTimedOut(ReadFailed):
    """The transaction ran past its time limit and the server ended it."""

    def __init__(self, timeout: float) -> None:
        super().__init__(f"the read ran past its {timeout:.0f} s limit")
        self.timeout = timeout


class GraphUnreachable(ReadFailed):
    """The server could not be reached."""


class ReadOutOfMemory(ReadFailed):
    """The server ended the read for needing more memory than one transaction (or the heap)
    may hold (`db.memory.transaction.max`)."""

    def __init__(self) -> None:
        super().__init__("the read needed more memory than the server gives one query")


def is_timeout(exc: ClientError) -> bool:
    """Whether the server ended a transaction for running past its limit (or terminated it)."""
    code = exc.code or ""
    return "TransactionTimedOut" in code or "Terminated" in code


def is_out_of_memory(exc: Exception) -> bool:
    """Whether the server ended a transaction for memory: over the per-transaction or total
    limit (MemoryPoolOutOfMemoryError) or out of heap (OutOfMemoryError)."""
    return isinstance(exc, TransientError) and "OutOfMemoryError" in (exc.code or "")


@contextmanager
def _not_retried_for_memory() -> Iterator[None]:
    """A memory error leaves as `ReadOutOfMemory`, which a managed transaction's retry loop does
    not retry (it retries every TransientError)."""
    try:
        yield
    except TransientError as exc:
        if is_out_of_memory(exc):
            raise ReadOutOfMemory() from None
        raise


@contextmanager
def read_errors(timeout: float) -> Iterator[None]:
    """Turn a timeout into `ReadTimedOut`, a memory limit into `ReadOutOfMemory` and an
    unreachable server into `GraphUnreachable`."""
    try:
        with _not_retried_for_memory():
            yield
    except ClientError as exc:
        if is_timeout(exc):
            raise ReadTimedOut(timeout) from None
        raise
    except ServiceUnavailable:
        raise GraphUnreachable("the graph database is not reachable right now") from None


def read_records(driver: neo4j.Driver, cypher: str, params: dict[str, Any], *,
                 database: str, timeout: float) -> list[neo4j.Record]:
    """Run `cypher` in a read transaction on the synchronous driver; all records at once."""
    @neo4j.unit_of_work(timeout=timeout)
    def work(tx: neo4j.ManagedTransaction) -> list[neo4j.Record]:
        with _not_retried_for_memory():
            return list(tx.run(cypher, params))

    with read_errors(timeout), driver.session(
            database=database, default_access_mode=neo4j.READ_ACCESS, fetch_size=-1) as session:
        return session.execute_read(work)


async def read_rows(driver: neo4j.AsyncDriver, cypher: str, params: dict[str, Any], *,
                    database: str, timeout: float) -> list[dict[str, Any]]:
    """Run `cypher` read-only on the async driver; rows as dicts.

    First as one auto-commit query (one round trip: a managed transaction adds a BEGIN and a
    COMMIT, and the API runs several small reads per request); if that meets an unreachable
    server or a transient error, again as a managed read transaction, which the driver retries
    while the server comes back. A read is safe to run twice."""
    with read_errors(timeout):
        try:
            async with driver.session(database=database, default_access_mode=neo4j.READ_ACCESS,
                                      fetch_size=-1) as session:
                with _not_retried_for_memory():
                    result = await session.run(neo4j.Query(cypher, timeout=timeout), params)
                    return await result.data()
        except (ServiceUnavailable, SessionExpired, TransientError):
            pass

        @neo4j.unit_of_work(timeout=timeout)
        async def work(tx: neo4j.AsyncManagedTransaction) -> list[dict[str, Any]]:
            with _not_retried_for_memory():
                result = await tx.run(cypher, params)
                return await result.data()

        async with driver.session(database=database, default_access_mode=neo4j.READ_ACCESS,
                                  fetch_size=-1) as session:
            return await session.execute_read(work)
