"""HTTP routes beside GraphQL: `GET|POST /export/matrix` and `GET|POST /export/neurons`.

The request is checked (and the neuron index read) before the response starts, so every bad
parameter is a 4xx with a JSON `detail`. The matrix is then written by a worker thread into a
bounded queue that the response drains: the event loop never runs the export, and memory stays
flat however large the matrix is. A client that goes away stops the worker.
"""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from typing import Annotated, Any

import neo4j
from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from connectome_query.export.matrix import (
    FORMATS,
    ExportError,
    ExportLimits,
    ExportPlan,
    MatrixRequest,
    prepare,
    read_metadata,
    write,
)
from connectome_query.graphdb.driver import open_driver
from connectome_query.graphdb.settings import Neo4jTarget
from connectome_query.graphql_api.auth import AuthError, not_readable, state_for

QUEUE_BLOCK = 1 << 20
"""Bytes the worker hands to the response at a time."""
QUEUE_DEPTH = 8
"""Blocks in flight between worker and response (bounds memory at ~8 MiB per download)."""


class _Done:
    pass


DONE = _Done()


class QueueSink:
    """A write-only binary file whose bytes go, in blocks, to a bounded queue."""

    def __init__(self, q: queue.Queue[Any], stop: threading.Event) -> None:
        self.q = q
        self.stop = stop
        self.buffer = bytearray()
        self.position = 0
        self.closed = False

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False

    def tell(self) -> int:
        return self.position

    def seek(self, *_: Any) -> int:
        raise io.UnsupportedOperation("not seekable")

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.buffer += view
        self.position += len(view)
        if len(self.buffer) >= QUEUE_BLOCK:
            self._put(bytes(self.buffer))
            self.buffer.clear()
        return len(view)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def finish(self) -> None:
        if self.buffer:
            self._put(bytes(self.buffer))
            self.buffer.clear()

    def _put(self, item: Any) -> None:
        while True:
            if self.stop.is_set():
                raise ConnectionAbortedError("the client went away")
            try:
                self.q.put(item, timeout=0.5)
                return
            except queue.Full:
                continue


def stream_export(driver: neo4j.Driver, plan: ExportPlan) -> Iterator[bytes]:
    """Run `write` in a worker thread and yield its bytes as they come."""
    q: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_DEPTH)
    stop = threading.Event()
    sink = QueueSink(q, stop)

    def produce() -> None:
        try:
            write(driver, plan, sink)  # type: ignore[arg-type]
            sink.finish()
            sink._put(DONE)
        except BaseException as exc:
            if not stop.is_set():
                with suppress(ConnectionAbortedError):
                    sink._put(exc)

    worker = threading.Thread(target=produce, name="export-writer", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is DONE:
                return
            if isinstance(item, BaseException):
                # Abort the response: the client sees a broken transfer, never a short file
                # that looks complete.
                raise RuntimeError("matrix export failed while streaming") from item
            yield item
    finally:
        stop.set()
        while True:
            try:
                q.get_nowait()
            except queue.Empty:
                break


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

    def request(self) -> MatrixRequest:
        return MatrixRequest(
            dataset=self.dataset,
            body_ids=tuple(self.bodyIds) if self.bodyIds is not None else None,
            types=tuple(self.types) if self.types is not None else None,
            rois=tuple(self.rois) if self.rois is not None else None,
            min_weight=self.minWeight, synapse_type=self.synapseType, level=self.level,
            format=self.format, neurons=self.neurons,
        )


def _split(values: list[str] | None) -> list[str] | None:
    """Repeated parameters and comma-separated lists both work (`type=A&type=B`, `type=A,B`)."""
    if not values:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def _ids(values: list[str] | None) -> list[int] | None:
    items = _split(values)
    if items is None:
        return None
    try:
        return [int(v, 10) for v in items]
    except ValueError:
        raise HTTPException(400, f"bodyIds must be integers, got {items[:5]}") from None


def export_router(target: Neo4jTarget | None = None) -> APIRouter:
    """The /export routes, with their own synchronous driver (opened on first use)."""
    state: dict[str, neo4j.Driver] = {}
    lock = threading.Lock()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            drv = state.pop("driver", None)
            if drv is not None:
                drv.close()

    def get_driver() -> neo4j.Driver:
        with lock:
            if "driver" not in state:
                state["driver"] = open_driver(target)
            return state["driver"]

    database = target.database if target else "neo4j"
    router = APIRouter(prefix="/export", tags=["export"], lifespan=lifespan)

    def is_public(dataset: str) -> bool:
        records, _, _ = get_driver().execute_query(
            "MATCH (m:Meta {dataset: $d}) RETURN m.public = true AS public", d=dataset,
            database_=database, routing_=neo4j.RoutingControl.READ)
        return bool(records and records[0]["public"])

    async def authorize(request: Request, dataset: str) -> None:
        """The API's token rules (graphql_api.auth): 401 for a bad token; an unreadable
        dataset reads as unknown (404), as in GraphQL."""
        auth = state_for(request)
        if not auth.config.required:
            return
        try:
            principal = auth.authenticate(request.headers.get("authorization"))
        except AuthError as exc:
            raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None
        if principal.reads_all or dataset in principal.datasets:
            return
        if not await run_in_threadpool(is_public, dataset):
            raise HTTPException(404, str(not_readable(dataset)))

    async def plan_for(req: MatrixRequest, request: Request,
                       count_entries: bool = True) -> ExportPlan:
        await authorize(request, req.dataset)
        try:
            limits = ExportLimits.from_env()
        except ValueError as exc:
            raise HTTPException(500, str(exc)) from None
        try:
            return await run_in_threadpool(prepare, get_driver(), req, limits=limits,
                                           database=database, count_entries=count_entries)
        except ExportError as exc:
            raise HTTPException(exc.status, exc.message) from None

    async def matrix(req: MatrixRequest, request: Request) -> StreamingResponse:
        plan = await plan_for(req, request)
        rows, cols = plan.shape
        headers = {
            "Content-Disposition": f'attachment; filename="{plan.request.filename()}"',
            "X-Matrix-Rows": str(rows),
            "X-Matrix-Columns": str(cols),
            "Cache-Control": "no-store",
        }
        return StreamingResponse(stream_export(get_driver(), plan),
                                 media_type=plan.request.media_type, headers=headers)

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
    ) -> StreamingResponse:
        ids = _ids(bodyIds)
        type_list, roi_list = _split(types), _split(rois)
        return await matrix(MatrixRequest(
            dataset=dataset, body_ids=tuple(ids) if ids is not None else None,
            types=tuple(type_list) if type_list is not None else None,
            rois=tuple(roi_list) if roi_list is not None else None, min_weight=minWeight,
            synapse_type=synapseType, level=level, format=format, neurons=neurons), request)

    @router.post("/matrix", summary="Download a connectivity matrix (JSON body, long id lists)")
    async def post_matrix(body: MatrixBody, request: Request) -> StreamingResponse:
        return await matrix(body.request(), request)

    async def neuron_table(req: MatrixRequest, request: Request) -> Response:
        if req.format not in ("csv", "parquet", "arrow"):
            raise HTTPException(400, f"unknown format {req.format!r} for the neuron table; use "
                                "csv, parquet or arrow")
        plan = await plan_for(req, request, count_entries=False)
        from connectome_query.export.formats import write_metadata

        def render() -> bytes:
            table = read_metadata(get_driver(), plan)
            buf = io.BytesIO()
            write_metadata(table, plan.request.format, buf)
            return buf.getvalue()

        body = await run_in_threadpool(render)
        name = f"{plan.request.dataset}_neurons{FORMATS[plan.request.format][1]}"
        return Response(body, media_type=plan.request.media_type,
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @router.get("/neurons", summary="The neuron table (metadata) of a matrix's rows")
    async def get_neurons(
        request: Request,
        dataset: str,
        bodyIds: Annotated[list[str] | None, Query()] = None,
        types: Annotated[list[str] | None, Query()] = None,
        format: str = "parquet",
    ) -> Response:
        ids, type_list = _ids(bodyIds), _split(types)
        return await neuron_table(MatrixRequest(
            dataset=dataset, body_ids=tuple(ids) if ids is not None else None,
            types=tuple(type_list) if type_list is not None else None, format=format,
            min_weight=0), request)

    @router.post("/neurons", summary="The neuron table (JSON body)")
    async def post_neurons(body: MatrixBody, request: Request) -> Response:
        return await neuron_table(body.request(), request)

    return router
