"""neuPrint-compatible read-only Cypher: `POST /api/custom/custom {"cypher", "dataset"}`.

Layers, any one of which stops a write: a keyword screen (no clause that writes, calls procedures,
loads files or switches database), `EXPLAIN` must report a read-only query, and the query runs in
a READ-mode transaction with a timeout. At most `CONNECTOME_CYPHER_MAX_ROWS` rows come back.
Arbitrary Cypher can read any dataset, so with auth on the endpoint needs a token that reads all
datasets (`*`).
"""

from __future__ import annotations

import re
from typing import Any

import neo4j
import neo4j.spatial
import neo4j.time
from fastapi import APIRouter, Request
from neo4j.exceptions import ClientError, Neo4jError
from starlette.responses import JSONResponse

from connectome_query.graphdb.reads import GraphUnreachable, ReadTimedOut, read_errors
from connectome_query.graphdb.settings import ApiSettings, from_env
from connectome_query.graphql_api.auth import ALL_DATASETS, can_read, require_read
from connectome_query.graphql_api.db import UNREACHABLE
from connectome_query.graphql_api.errors import QueryError
from connectome_query.graphql_api.guard import error_response
from connectome_query.schema.model import DATASET_NAME

MAX_CYPHER_CHARS = 20_000

FORBIDDEN = re.compile(
    r"\b(CREATE|MERGE|DELETE|DETACH|SET|REMOVE|DROP|ALTER|RENAME|CALL|LOAD|USE|SHOW|FOREACH|"
    r"GRANT|DENY|REVOKE|START|STOP|TERMINATE|ENABLE|DISABLE|EXPLAIN|PROFILE|PERIODIC|FINISH)\b"
    r"|\b(apoc|db|dbms|gds|tx)\s*\.",
    re.IGNORECASE,
)


class CypherRejected(QueryError):
    """A query the endpoint will not run (the message says why)."""


def screen(cypher: Any) -> str:
    """The query text if it passes the keyword screen, else CypherRejected."""
    if not isinstance(cypher, str) or not cypher.strip():
        raise CypherRejected("give the query as a non-empty string in 'cypher'")
    if len(cypher) > MAX_CYPHER_CHARS:
        raise CypherRejected(f"query longer than {MAX_CYPHER_CHARS} characters")
    hit = FORBIDDEN.search(cypher)
    if hit:
        raise CypherRejected(f"read-only endpoint: {hit.group(0).strip()!r} is not allowed")
    return cypher


def to_json(value: Any) -> Any:
    """Bolt values as JSON: nodes and relationships as their properties, points as lists."""
    if isinstance(value, neo4j.graph.Node | neo4j.graph.Relationship):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, neo4j.graph.Path):
        return [to_json(n) for n in value.nodes]
    if isinstance(value, neo4j.spatial.Point):
        return list(value)
    if isinstance(value, neo4j.time.Date | neo4j.time.DateTime | neo4j.time.Time
                  | neo4j.time.Duration):
        return value.iso_format()
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value


async def run_readonly(driver: neo4j.AsyncDriver, cypher: Any, *, database: str = "neo4j",
                       timeout: float | None = None, max_rows: int | None = None,
                       ) -> tuple[list[str], list[list[Any]]]:
    """Check with EXPLAIN, then run in a READ transaction; (columns, rows) or QueryError.

    `timeout` and `max_rows` default to `CONNECTOME_CYPHER_TIMEOUT_S` and
    `CONNECTOME_CYPHER_MAX_ROWS`."""
    env = from_env(ApiSettings)
    timeout = env.cypher_timeout_s if timeout is None else timeout
    max_rows = env.cypher_max_rows if max_rows is None else max_rows
    text = screen(cypher)

    @neo4j.unit_of_work(timeout=timeout)
    async def explain(tx: neo4j.AsyncManagedTransaction) -> str | None:
        summary = await (await tx.run("EXPLAIN " + text)).consume()
        return summary.query_type

    @neo4j.unit_of_work(timeout=timeout)
    async def work(tx: neo4j.AsyncManagedTransaction) -> tuple[list[str], list[list[Any]]]:
        result = await tx.run(text)
        keys = list(result.keys())
        records = await result.fetch(max_rows + 1)
        if len(records) > max_rows:
            raise CypherRejected(f"more than {max_rows} rows; add a LIMIT or narrow the query")
        return keys, [[to_json(v) for v in r.values()] for r in records]

    try:
        with read_errors(timeout):
            async with driver.session(database=database,
                                      default_access_mode=neo4j.READ_ACCESS) as session:
                if await session.execute_read(explain) != "r":
                    raise CypherRejected("read-only endpoint: the query would write")
                return await session.execute_read(work)
    except ReadTimedOut:
        raise QueryError(f"the query ran longer than its {timeout:.0f} s limit") from None
    except GraphUnreachable:
        raise QueryError(UNREACHABLE) from None
    except ClientError as exc:
        code = exc.code or ""
        if "Statement.SyntaxError" in code:
            first = (exc.message or "").splitlines()[0][:300]
            raise CypherRejected(f"Cypher syntax error: {first}") from None
        if "AccessMode" in code or "Forbidden" in code or "Security" in code:
            raise CypherRejected("read-only endpoint: the query would write") from None
        raise CypherRejected("the query failed") from None
    except Neo4jError:
        raise QueryError("the query failed") from None


def router(get_driver: Any, database: str) -> APIRouter:
    """The `/api/custom/custom` route, bound to the app's driver getter."""
    api = APIRouter()

    @api.post("/api/custom/custom")
    async def custom(request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            return error_response(400, "the body must be JSON: {\"cypher\": ..., \"dataset\": ...}")
        if not isinstance(body, dict):
            return error_response(400, "the body must be a JSON object")
        if not await can_read(request, ALL_DATASETS):
            return error_response(403, "the Cypher endpoint needs a token that may read every "
                                  "dataset; use the GraphQL API at /graphql")
        driver = get_driver()
        try:
            dataset = body.get("dataset")
            if dataset is not None:
                if not isinstance(dataset, str) or not DATASET_NAME.match(dataset):
                    raise QueryError(f"invalid dataset name {dataset!r}")
                await require_read(request, dataset, driver=driver, database=database)
            columns, data = await run_readonly(driver, body.get("cypher"), database=database)
        except QueryError as exc:
            return error_response(400, str(exc))
        return JSONResponse({"columns": columns, "data": data})

    return api
