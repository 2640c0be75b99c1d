"""HTTP routes beside GraphQL: `GET|POST /export/matrix` and `GET|POST /export/neurons`.

Thin over the `export` package: a route parses its parameters into a `MatrixRequest`, asks
`auth.can_read` (the API's one authorisation decision), lets `export.matrix.prepare` check the
request and read the neuron index before the response starts (so every bad parameter is a 4xx
with a JSON `detail`), then streams the file from `export.stream`.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from typing import Annotated
from urllib.parse import urlencode

import neo4j
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from connectome_query.export.formats import write_metadata
from connectome_query.export.matrix import ExportPlan, prepare, read_metadata
from connectome_query.export.request import (
    FORMATS,
    ExportError,
    ExportLimits,
    MatrixRequest,
    split_names,
)
from connectome_query.export.stream import stream_export
from connectome_query.graphql_api.auth import AuthError, require_read
from connectome_query.graphql_api.db import SyncDriver
from connectome_query.graphql_api.errors import QueryError

log = logging.getLogger("connectome_query.api")

TABLE_FORMATS = ("csv", "parquet", "arrow")
"""Formats of the neuron table."""


class MatrixBody(BaseModel):
    """POST body for /export/matrix (the same fields as the GET query parameters)."""

    dataset: str
    bodyIds: list[int] | None = None
    types: list[str] | None = None
    rois: list[str] | None = None
    minWeight: int = 1
    synapseType: str = "chemical"
    level: str = Field("neuron", description="neuron, or type to collapse by cell type")
    format: str = "parquet"
    neurons: bool = False
    version: int | None = Field(None, description="Dataset version (default: the current one)")

    def request(self) -> MatrixRequest:
        return MatrixRequest.from_lists(
            self.dataset, body_ids=self.bodyIds, types=self.types, rois=self.rois,
            min_weight=self.minWeight, synapse_type=self.synapseType, level=self.level,
            format=self.format, neurons=self.neurons, version=self.version)


def matrix_query(req: MatrixRequest) -> str:
    """The query string of `GET /export/matrix` for `req` (the GraphQL field's download URL)."""
    params: list[tuple[str, str]] = [("dataset", req.dataset)]
    if req.body_ids is not None:
        params.append(("bodyIds", ",".join(str(i) for i in req.body_ids)))
    params += [("types", t) for t in req.types or ()]
    params += [("rois", r) for r in req.rois or ()]
    params += [("minWeight", str(req.min_weight)), ("synapseType", req.synapse_type),
               ("level", req.level), ("format", req.format)]
    if req.version is not None:
        params.append(("version", str(req.version)))
    return urlencode(params)


def _ids(values: list[str] | None) -> list[int] | None:
    items = split_names(values)
    if items is None:
        return None
    try:
        return [int(v, 10) for v in items]
    except ValueError:
        raise HTTPException(400, f"bodyIds must be integers, got {items[:5]}") from None


class Exports:
    """What the routes share: the app's synchronous driver, on which exports run in worker
    threads, and its async driver, with which authorisation reads public datasets."""

    def __init__(self, sync_driver: SyncDriver, database: str,
                 async_driver: Callable[[], neo4j.AsyncDriver]) -> None:
        self.sync = sync_driver
        self.database = database
        self.async_driver = async_driver

    def driver(self) -> neo4j.Driver:
        return self.sync.get()

    async def authorize(self, request: Request, dataset: str) -> None:
        """401 for a bad token; a dataset the caller may not read reads as unknown (404)."""
        try:
            await require_read(request, dataset, driver=self.async_driver(),
                               database=self.database)
        except AuthError as exc:
            raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None
        except QueryError as exc:
            log.info("export refused: %s", exc)
            raise HTTPException(404, str(exc)) from None

    async def plan(self, req: MatrixRequest, request: Request,
                   count_entries: bool = True) -> ExportPlan:
        await self.authorize(request, req.dataset)
        try:
            limits = ExportLimits.from_env()
        except ValueError as exc:
            raise HTTPException(500, str(exc)) from None
        try:
            return await run_in_threadpool(prepare, self.driver(), req, limits=limits,
                                           database=self.database, count_entries=count_entries)
        except ExportError as exc:
            raise HTTPException(exc.status, exc.message) from None

    async def matrix(self, req: MatrixRequest, request: Request) -> StreamingResponse:
        plan = await self.plan(req, request)
        rows, cols = plan.shape
        headers = {
            "Content-Disposition": f'attachment; filename="{plan.request.filename()}"',
            "X-Matrix-Rows": str(rows),
            "X-Matrix-Columns": str(cols),
            "Cache-Control": "no-store",
        }
        return StreamingResponse(stream_export(self.driver(), plan),
                                 media_type=plan.request.media_type, headers=headers)

    async def neuron_table(self, req: MatrixRequest, request: Request) -> Response:
        if req.format not in TABLE_FORMATS:
            raise HTTPException(400, f"unknown format {req.format!r} for the neuron table; use "
                                "csv, parquet or arrow")
        plan = await self.plan(req, request, count_entries=False)

        def render() -> bytes:
            buf = io.BytesIO()
            write_metadata(read_metadata(self.driver(), plan), plan.request.format, buf)
            return buf.getvalue()

        body = await run_in_threadpool(render)
        name = f"{plan.request.dataset}_neurons{FORMATS[plan.request.format][1]}"
        return Response(body, media_type=plan.request.media_type,
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


def export_router(sync_driver: SyncDriver, database: str,
                  async_driver: Callable[[], neo4j.AsyncDriver]) -> APIRouter:
    """The /export routes, reading `database` through the app's drivers."""
    exports = Exports(sync_driver, database, async_driver)
    router = APIRouter(prefix="/export", tags=["export"])

    @router.get("/matrix", summary="Download a connectivity matrix (streamed)")
    async def get_matrix(
        request: Request,
        dataset: str,
        bodyIds: Annotated[list[str] | None, Query(
            description="Neurons to keep (both ends), repeated or comma-separated")] = None,
        types: Annotated[list[str] | None, Query(description="Cell types to keep")] = None,
        rois: Annotated[list[str] | None, Query(
            description="Count only synapses in these ROIs (chemical)")] = None,
        minWeight: int = 1,
        synapseType: str = "chemical",
        level: str = "neuron",
        format: str = "parquet",
        neurons: bool = False,
        version: Annotated[int | None, Query(
            description="Dataset version (default: the current one)")] = None,
    ) -> StreamingResponse:
        return await exports.matrix(MatrixRequest.from_lists(
            dataset, body_ids=_ids(bodyIds), types=split_names(types), rois=split_names(rois),
            min_weight=minWeight, synapse_type=synapseType, level=level, format=format,
            neurons=neurons, version=version), request)

    @router.post("/matrix", summary="Download a connectivity matrix (JSON body, long id lists)")
    async def post_matrix(body: MatrixBody, request: Request) -> StreamingResponse:
        return await exports.matrix(body.request(), request)

    @router.get("/neurons", summary="The neuron table (metadata) of a matrix's rows")
    async def get_neurons(
        request: Request,
        dataset: str,
        bodyIds: Annotated[list[str] | None, Query()] = None,
        types: Annotated[list[str] | None, Query()] = None,
        format: str = "parquet",
        version: Annotated[int | None, Query()] = None,
    ) -> Response:
        return await exports.neuron_table(MatrixRequest.from_lists(
            dataset, body_ids=_ids(bodyIds), types=split_names(types), format=format,
            min_weight=0, version=version), request)

    @router.post("/neurons", summary="The neuron table (JSON body)")
    async def post_neurons(body: MatrixBody, request: Request) -> Response:
        return await exports.neuron_table(body.request(), request)

    return router
