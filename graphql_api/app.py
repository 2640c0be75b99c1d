"""The FastAPI application: GraphQL (with GraphiQL) at /graphql, health at /health, the Cypher
endpoint and the export routes, all behind the guard (`guard`); browser pages, volumes and
assets from `web` (served from this server only, so they work offline)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import neo4j
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from connectome_query.graphdb.driver import open_async_driver
from connectome_query.graphdb.settings import Neo4jTarget
from connectome_query.graphql_api.auth import AuthConfig
from connectome_query.graphql_api.context import ApiContext
from connectome_query.graphql_api.custom_cypher import answer_all_datasets
from connectome_query.graphql_api.db import SyncDriver
from connectome_query.graphql_api.error_shape import error_fields
from connectome_query.graphql_api.export_routes import export_router
from connectome_query.graphql_api.guard import install as install_guard
from connectome_query.graphql_api.neuprint.routes import neuprint_router
from connectome_query.graphql_api.schema import schema
from connectome_query.graphql_api.web import assets, pages, volumes


def create_app(target: Neo4jTarget | None = None, auth: AuthConfig | None = None) -> FastAPI:
    """Build the app; the drivers open at start-up against `target` (default: settings).

    `auth` defaults to `AuthConfig.from_env()`: off unless CONNECTOME_AUTH=required.
    """
    state: dict[str, neo4j.AsyncDriver] = {}
    sync = SyncDriver(target)
    database = target.database if target else "neo4j"

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state["driver"] = open_async_driver(target)
        try:
            yield
        finally:
            await state["driver"].close()
            sync.close()

    async def get_context() -> ApiContext:
        return ApiContext(state["driver"], database=database)

    app = FastAPI(title="connectome-query", lifespan=lifespan, docs_url=None, redoc_url=None)
    install_guard(app, auth or AuthConfig.from_env())
    app.add_exception_handler(RequestValidationError, _bad_parameters)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.include_router(neuprint_router(
        lambda: state["driver"], sync.get, database,
        lambda request: answer_all_datasets(request, lambda: state["driver"], sync.get,
                                            database)))
    app.include_router(assets.LocalGraphQLRouter(schema, context_getter=get_context),
                       prefix="/graphql")
    app.include_router(export_router(sync, database, lambda: state["driver"]))
    assets.install(app)
    app.include_router(volumes.router(lambda: state["driver"], database))
    app.include_router(pages.router(lambda: state["driver"], database))

    @app.get("/health")
    async def health() -> dict[str, str]:
        await state["driver"].verify_connectivity()
        return {"status": "ok"}

    return app


async def _bad_parameters(_: Request, exc: Exception) -> JSONResponse:
    """400 naming each parameter FastAPI could not read (its default is 422 with a list)."""
    assert isinstance(exc, RequestValidationError)
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "body"))
        problems.append(f"{where or 'body'}: {err.get('msg', 'invalid')}")
    message = "; ".join(problems)
    return JSONResponse({"detail": message, **error_fields(400, message)}, status_code=400)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    """FastAPI's `{"detail"}` with the common `error` and `code` beside it."""
    assert isinstance(exc, StarletteHTTPException)
    message = str(exc.detail)
    return JSONResponse({"detail": exc.detail, **error_fields(exc.status_code, message)},
                        status_code=exc.status_code, headers=exc.headers)
