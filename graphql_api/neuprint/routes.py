"""The neuPrint routes: `/api/dbmeta/datasets`, `/api/version`, `/api/serverinfo`,
`/api/custom/custom` and `/api/skeletons/skeleton/{dataset}/{bodyId}`.

A query sent with a `dataset` is scoped to that dataset version (`scope`); without one it is
the all-datasets endpoint of `custom_cypher` (a token that reads every dataset). Errors are
neuPrint's shape, `{"error": message}` with a 4xx status, plus a stable `code`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import neo4j
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, PlainTextResponse, Response

from connectome_query.graphql_api.auth import can_read, state_for
from connectome_query.graphql_api.custom_cypher import (
    Answer,
    CypherLimits,
    CypherRejected,
    CypherTimedOut,
    run_readonly,
)
from connectome_query.graphql_api.db import read
from connectome_query.graphql_api.error_shape import error_fields
from connectome_query.graphql_api.errors import QueryError
from connectome_query.graphql_api.guard import json_body
from connectome_query.graphql_api.neuprint import datasets, timeboxed
from connectome_query.graphql_api.neuprint.scope import Scope, check_scoped, rewrite
from connectome_query.graphql_api.skeletons import SKELETON, NoSkeleton, to_swc

NEUPRINT_VERSION = "1.7.2"
"""The neuPrintHTTP API level these routes follow (1.7.3 and later add Arrow answers)."""

log = logging.getLogger("connectome_query.api")


def neuprint_error(status: int, message: str, code: str) -> JSONResponse:
    """neuPrint's error body, `{"error": ...}`, with a stable code (`error_shape`)."""
    return JSONResponse({**error_fields(status, message, code),
                         "errors": [{"message": message}]}, status_code=status)


def _code(exc: QueryError) -> tuple[int, str]:
    if isinstance(exc, datasets.UnknownVersion):
        return 404, "unknown_dataset"
    if isinstance(exc, datasets.NotScoped):
        return 409, "dataset_not_prepared"
    if isinstance(exc, CypherTimedOut):
        return 408, "timeout"
    if isinstance(exc, CypherRejected):
        return 400, "query_refused"
    return 400, "bad_request"


def run_scoped(driver: neo4j.Driver, cypher: Any, scope: Scope, database: str,
               limits: CypherLimits | None = None) -> Answer:
    """Run neuPrint Cypher against one version: labels rewritten, plan checked (read-only,
    allowlist, scope), answer capped. `runTimeboxed` queries run their inner query."""
    limits = limits or CypherLimits.from_env()
    boxed = timeboxed.parse(cypher) if isinstance(cypher, str) else None
    if boxed is None:
        text = rewrite(cypher, scope) if isinstance(cypher, str) else cypher
        return run_readonly(driver, text, database=database, limits=limits,
                            plan_check=lambda plan: check_scoped(plan, scope))
    inner_limits = CypherLimits(timeout=min(limits.timeout, max(boxed.seconds, 0.001)),
                                max_rows=limits.max_rows, max_bytes=limits.max_bytes)
    try:
        inner = run_readonly(driver, rewrite(boxed.inner, scope), database=database,
                             limits=inner_limits,
                             plan_check=lambda plan: check_scoped(plan, scope))
    except CypherTimedOut:
        return Answer(columns=[alias for _, alias in boxed.columns])
    where = {name: i for i, name in enumerate(inner.columns)}
    answer = Answer(columns=[alias for _, alias in boxed.columns])
    for raw in inner.rows:
        row = json.loads(raw)
        picked = [row[where[f]] if f in where else None for f, _ in boxed.columns]
        encoded = json.dumps(picked, ensure_ascii=False, separators=(",", ":")).encode()
        answer.rows.append(encoded)
        answer.size += len(encoded) + 1
    return answer


def neuprint_router(get_async: Callable[[], neo4j.AsyncDriver],
                    get_sync: Callable[[], neo4j.Driver], database: str,
                    all_datasets: Callable[[Request], Any]) -> APIRouter:
    """The routes; `all_datasets` answers a `/api/custom/custom` request without a dataset."""
    api = APIRouter()

    async def version_for(request: Request, name: Any) -> dict[str, Any]:
        wanted = datasets.Requested.parse(name)
        if not await can_read(request, wanted.name, driver=get_async(), database=database):
            raise datasets.UnknownVersion(f"unknown dataset {wanted.name!r}, or these "
                                          "credentials may not read it")
        return await datasets.resolve(get_async(), wanted, database)

    @api.get("/api/version")
    async def version() -> dict[str, str]:
        return {"Version": NEUPRINT_VERSION}

    @api.get("/api/serverinfo")
    async def serverinfo(request: Request) -> dict[str, bool]:
        return {"IsPublic": not state_for(request).config.required}

    @api.get("/api/dbmeta/datasets")
    async def dbmeta_datasets(request: Request) -> Response:
        try:
            rows = await read(get_async(), datasets.VERSIONS, {}, database=database)
        except QueryError as exc:
            return neuprint_error(503, str(exc), "unavailable")
        visible = [r for r in rows if r["scoped"] and await can_read(
            request, r["name"], driver=get_async(), database=database)]
        return JSONResponse(datasets.listing(visible))

    @api.post("/api/custom/custom")
    async def custom(request: Request) -> Response:
        body = await json_body(request)
        if isinstance(body, JSONResponse):
            return body
        if body.get("dataset") in (None, ""):
            return await all_datasets(request)
        try:
            row = await version_for(request, body["dataset"])
            scope = Scope(name=row["name"], key=row["key"])
            driver, cypher = get_sync(), body.get("cypher")
            content = await run_in_threadpool(
                lambda: run_scoped(driver, cypher, scope, database).body())
        except QueryError as exc:
            status, code = _code(exc)
            log.info("neuPrint Cypher refused (%s): %s", code, exc)
            return neuprint_error(status, str(exc), code)
        return Response(content, media_type="application/json")

    @api.get("/api/skeletons/skeleton/{dataset}/{body_id}")
    async def skeleton(request: Request, dataset: str, body_id: str,
                       format: str = "swc") -> Response:
        try:
            row = await version_for(request, dataset)
            return await _skeleton(get_async(), row["key"], body_id, format, database)
        except NoSkeleton as exc:
            return neuprint_error(404, str(exc), "no_skeleton")
        except QueryError as exc:
            status, code = _code(exc)
            return neuprint_error(status, str(exc), code)

    return api


async def _skeleton(driver: neo4j.AsyncDriver, key: str, body_id: str, form: str,
                    database: str) -> Response:
    if not body_id.isdigit():
        raise QueryError(f"bodyId must be a whole number, not {body_id!r}")
    if form not in ("swc", "json"):
        raise QueryError(f"format must be swc or json, not {form!r}")
    nodes = await read(driver, SKELETON, {"key": key, "bodyId": int(body_id)},
                       database=database)
    if not nodes:
        raise NoSkeleton(f"no skeleton for body {body_id} in {key}")
    if form == "json":
        return JSONResponse({"bodyId": int(body_id), "nodes": nodes})
    return PlainTextResponse(to_swc(nodes))
