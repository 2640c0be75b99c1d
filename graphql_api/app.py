"""The FastAPI application: GraphQL (with GraphiQL) at /graphql, health at /health."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import neo4j
from fastapi import FastAPI
from strawberry.fastapi import GraphQLRouter

from connectome_query.graphdb.driver import open_async_driver
from connectome_query.graphdb.settings import Neo4jTarget
from connectome_query.graphql_api.auth import AuthConfig
from connectome_query.graphql_api.context import ApiContext
from connectome_query.graphql_api.custom_cypher import router as cypher_router
from connectome_query.graphql_api.export_routes import export_router
from connectome_query.graphql_api.guard import install as install_guard
from connectome_query.graphql_api.schema import schema


def create_app(target: Neo4jTarget | None = None, auth: AuthConfig | None = None) -> FastAPI:
    """Build the app; the driver opens at start-up against `target` (default: settings).

    `auth` defaults to `AuthConfig.from_env()`: off unless CONNECTOME_AUTH=required.
    """
    state: dict[str, neo4j.AsyncDriver] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state["driver"] = open_async_driver(target)
        try:
            yield
        finally:
            await state["driver"].close()

    async def get_context() -> ApiContext:
        database = target.database if target else "neo4j"
        return ApiContext(state["driver"], database=database)

    app = FastAPI(title="connectome-query", lifespan=lifespan)
    install_guard(app, auth or AuthConfig.from_env())
    app.include_router(cypher_router(lambda: state["driver"],
                                     target.database if target else "neo4j"))
    app.include_router(GraphQLRouter(schema, context_getter=get_context), prefix="/graphql")
    app.include_router(export_router(target, lambda: state["driver"]))

    @app.get("/health")
    async def health() -> dict[str, str]:
        await state["driver"].verify_connectivity()
        return {"status": "ok"}

    return app
