"""neuPrint-compatible read-only Cypher: `POST /api/custom/custom {"cypher", "dataset"}`.

Whether a query may run is decided from Neo4j's own parse, not from its text: `EXPLAIN` in a READ
transaction, then every operator, procedure and function of the plan checked against the
allowlist (`cypher_plan`, `cypher_allowlist`). The query then runs in that same transaction,
with a timeout, and its answer is capped in rows and in bytes as it is read. The server adds its
own layers (graphdb.local_server: plugin allowlist, no LOAD CSV from files or URLs, a memory
limit per transaction). Everything runs in a worker thread on the synchronous driver, so neither
decoding nor serialising a large answer holds up the event loop. Arbitrary Cypher can read any
dataset, so with auth on the endpoint needs a token that reads all datasets (`*`).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import neo4j
import neo4j.graph
import neo4j.spatial
import neo4j.time
from fastapi import APIRouter, Request
from neo4j.exceptions import ClientError, Neo4jError
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from connectome_query.graphdb.reads import (
    GraphUnreachable,
    ReadOutOfMemory,
    ReadTimedOut,
    read_errors,
)
from connectome_query.graphdb.settings import ApiSettings, from_env
from connectome_query.graphql_api.auth import ALL_DATASETS, can_read, require_read
from connectome_query.graphql_api.cypher_plan import PlanRefused, check_plan
from connectome_query.graphql_api.db import UNREACHABLE
from connectome_query.graphql_api.errors import QueryError
from connectome_query.graphql_api.guard import error_response, json_body
from connectome_query.schema.model import DATASET_NAME

MAX_CYPHER_CHARS = 20_000
FUNCTIONS_CACHE_S = 60.0
"""How long the server's list of functions is reused."""

log = logging.getLogger("connectome_query.api")


class CypherRejected(QueryError):
    """A query the endpoint will not run (the message says why)."""

    code = "query_refused"


class CypherTimedOut(QueryError):
    """A query that ran past its time limit."""

    code = "timeout"


@dataclass(frozen=True)
class CypherLimits:
    """Time, rows and bytes one query may take (`CONNECTOME_CYPHER_*`)."""

    timeout: float
    max_rows: int
    max_bytes: int

    @classmethod
    def from_env(cls) -> CypherLimits:
        env = from_env(ApiSettings)
        return cls(timeout=env.cypher_timeout_s, max_rows=env.cypher_max_rows,
                   max_bytes=env.cypher_max_bytes)


@dataclass
class Answer:
    """Columns and rows, each row already JSON."""

    columns: list[str]
    rows: list[bytes] = field(default_factory=list)
    size: int = 0

    def body(self) -> bytes:
        """`{"columns": [...], "data": [[...], ...]}` as bytes."""
        head = json.dumps({"columns": self.columns})[:-1].encode()
        return head + b',"data":[' + b",".join(self.rows) + b"]}"


def query_text(cypher: Any) -> str:
    """The query, if it is a non-empty string of sensible length, else CypherRejected."""
    if not isinstance(cypher, str) or not cypher.strip():
        raise CypherRejected("give the query as a non-empty string in 'cypher'")
    if len(cypher) > MAX_CYPHER_CHARS:
        raise CypherRejected(f"query longer than {MAX_CYPHER_CHARS} characters")
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
    if isinstance(value, float) and not math.isfinite(value):  # NaN and infinities: not JSON
        return None
    return value


class FunctionCatalog:
    """The server's function names (`SHOW FUNCTIONS`), lower-cased, cached a minute."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cached: tuple[float, frozenset[str]] | None = None

    def get(self, session: neo4j.Session) -> frozenset[str]:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] > FUNCTIONS_CACHE_S:
                names = session.run("SHOW FUNCTIONS YIELD name RETURN collect(name) AS names"
                                    ).single(strict=True)["names"]
                self._cached = (now, frozenset(str(n).lower() for n in names))
            return self._cached[1]


_FUNCTIONS = FunctionCatalog()


def _read_answer(result: neo4j.Result, limits: CypherLimits) -> Answer:
    answer = Answer(columns=list(result.keys()))
    for record in result:
        if len(answer.rows) >= limits.max_rows:
            raise CypherRejected(f"more than {limits.max_rows} rows "
                                 "(CONNECTOME_CYPHER_MAX_ROWS); add a LIMIT or narrow the query")
        row = json.dumps([to_json(v) for v in record.values()], ensure_ascii=False,
                         separators=(",", ":")).encode()
        answer.size += len(row) + 1
        if answer.size > limits.max_bytes:
            raise CypherRejected(f"the answer is over {limits.max_bytes:,} bytes "
                                 "(CONNECTOME_CYPHER_MAX_BYTES); return fewer or smaller values")
        answer.rows.append(row)
    return answer


def _client_error(exc: ClientError) -> CypherRejected:
    code = exc.code or ""
    first = (exc.message or "").splitlines()[0][:300] if exc.message else ""
    if "Statement.SyntaxError" in code:
        return CypherRejected(f"Cypher syntax error: {first}")
    if "AccessMode" in code or "Forbidden" in code or "Security" in code:
        return CypherRejected("read-only endpoint: the query would write")
    if (".Statement." in code or ".Procedure." in code) and first:
        return CypherRejected(f"the query failed: {first}")
    return CypherRejected("the query failed")


def check_explained(summary: neo4j.ResultSummary, database: str, known: frozenset[str]) -> None:
    """PlanRefused unless the plan passes `check_plan` and Neo4j calls the query read-only."""
    if summary.plan is None:
        raise PlanRefused("the query has no plan to check")
    check_plan(summary.plan, database, known)
    if summary.query_type != "r":
        raise PlanRefused("read-only endpoint: the query would write")


def run_readonly(driver: neo4j.Driver, cypher: Any, *, database: str = "neo4j",
                 limits: CypherLimits | None = None,
                 plan_check: Callable[[dict[str, Any]], None] | None = None) -> Answer:
    """Check the query's plan (and `plan_check` on it, which raises PlanRefused), then run it
    in the same READ transaction; its answer, or a QueryError saying why not. Blocking: call
    it from a worker thread."""
    limits = limits or CypherLimits.from_env()
    text = query_text(cypher)
    try:
        with read_errors(limits.timeout), driver.session(
                database=database, default_access_mode=neo4j.READ_ACCESS) as session:
            known = _FUNCTIONS.get(session)
            with session.begin_transaction(timeout=limits.timeout) as tx:
                summary = tx.run("EXPLAIN " + text).consume()
                check_explained(summary, database, known)
                if plan_check is not None and summary.plan is not None:
                    plan_check(summary.plan)
                return _read_answer(tx.run(text), limits)
    except PlanRefused as exc:
        raise CypherRejected(str(exc)) from None
    except ReadTimedOut:
        raise CypherTimedOut(f"the query ran longer than its {limits.timeout:g} s limit "
                         "(CONNECTOME_CYPHER_TIMEOUT_S)") from None
    except ReadOutOfMemory:
        raise QueryError("the query needed more memory than the server gives one query "
                         "(db.memory.transaction.max); narrow it", code="too_large") from None
    except GraphUnreachable:
        raise QueryError(UNREACHABLE, code="unavailable") from None
    except ClientError as exc:
        raise _client_error(exc) from None
    except Neo4jError:
        raise QueryError("the query failed") from None


async def answer_all_datasets(request: Request, get_async: Callable[[], neo4j.AsyncDriver],
                              get_sync: Callable[[], neo4j.Driver], database: str) -> Response:
    """`POST /api/custom/custom` over every dataset: authorisation with the app's async driver,
    the query on the synchronous one in a worker thread."""
    body = await json_body(request)
    if isinstance(body, JSONResponse):
        return body
    if not await can_read(request, ALL_DATASETS):
        log.info("Cypher endpoint refused: the token may not read every dataset")
        return error_response(403, "the Cypher endpoint needs a token that may read every "
                              "dataset; use the GraphQL API at /graphql")
    try:
        dataset = body.get("dataset")
        if dataset is not None:
            if not isinstance(dataset, str) or not DATASET_NAME.match(dataset):
                raise QueryError(f"invalid dataset name {dataset!r}")
            await require_read(request, dataset, driver=get_async(), database=database)
        driver, cypher = get_sync(), body.get("cypher")
        content = await run_in_threadpool(
            lambda: run_readonly(driver, cypher, database=database).body())
    except QueryError as exc:
        log.info("Cypher endpoint refused: %s", exc)
        return error_response(400, str(exc))
    return Response(content, media_type="application/json")


def router(get_async: Callable[[], neo4j.AsyncDriver], get_sync: Callable[[], neo4j.Driver],
           database: str) -> APIRouter:
    """The `/api/custom/custom` route over every dataset (`answer_all_datasets`)."""
    api = APIRouter()

    @api.post("/api/custom/custom")
    async def custom(request: Request) -> Response:
        return await answer_all_datasets(request, get_async, get_sync, database)

    return api
