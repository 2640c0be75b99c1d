"""GraphQL `connectivityMatrix`: small matrices inline, a download URL for every matrix.

The field reads the neuron index and counts entries (stopping past the inline cap) with the
async driver; a matrix within `ExportLimits.inline_edges` entries and `inline_neurons` neurons
comes back as entries, anything larger only as `downloadUrl` (the streamed /export/matrix).
"""

from __future__ import annotations

from enum import Enum
from urllib.parse import urlencode

import strawberry
from strawberry.types import Info

from connectome_query.export.matrix import (
    INDEX,
    META,
    Chunk,
    ExportError,
    ExportLimits,
    MatrixRequest,
    TypeAccumulator,
    check_meta,
    check_selection,
    chunk_from_records,
    count_query,
    edges_query,
    index_from_rows,
    query_params,
)
from connectome_query.graphql_api.auth import require_read
from connectome_query.graphql_api.context import ApiContext
from connectome_query.graphql_api.db import read
from connectome_query.graphql_api.errors import QueryError


@strawberry.enum(description="Chemical synapses (ConnectsTo) or gap junctions (symmetric).")
class MatrixSynapseType(Enum):
    CHEMICAL = "chemical"
    ELECTRICAL = "electrical"


@strawberry.enum(description="One row per neuron, or neurons summed into cell types.")
class MatrixLevel(Enum):
    NEURON = "neuron"
    TYPE = "type"


@strawberry.enum(description="File format of the download.")
class MatrixFormat(Enum):
    CSV = "csv"
    PARQUET = "parquet"
    ARROW = "arrow"
    NPZ = "npz"
    MTX = "mtx"


@strawberry.type(description="One nonzero entry: synapses from `pre` onto `post`.")
class MatrixEntry:
    pre: str = strawberry.field(description="Row label: a bodyId, or a type when collapsed.")
    post: str = strawberry.field(description="Column label.")
    weight: int


@strawberry.type(description="A connectivity matrix: inline when small, else a download URL.")
class ConnectivityMatrix:
    dataset: str
    synapse_type: MatrixSynapseType
    level: MatrixLevel
    size: int = strawberry.field(description="Rows (= columns) of the square matrix.")
    inline: bool = strawberry.field(description="True when `entries` holds the whole matrix.")
    entry_count: int | None = strawberry.field(
        description="Nonzero entries (known when inline).")
    labels: list[str] | None = strawberry.field(
        description="Row (= column) labels in order, when inline.")
    entries: list[MatrixEntry] | None = strawberry.field(
        description="Nonzero entries sorted by row then column, when inline.")
    download_url: str = strawberry.field(
        description="GET this for the whole matrix as a streamed file (any size).")


def _download_url(info: Info[ApiContext, None], req: MatrixRequest) -> str:
    params: list[tuple[str, str]] = [("dataset", req.dataset)]
    if req.body_ids is not None:
        params.append(("bodyIds", ",".join(str(i) for i in req.body_ids)))
    params += [("types", t) for t in req.types or ()]
    params += [("rois", r) for r in req.rois or ()]
    params += [("minWeight", str(req.min_weight)), ("synapseType", req.synapse_type),
               ("level", req.level), ("format", req.format)]
    request = info.context.request
    base = str(request.base_url) if request is not None else "/"
    return f"{base}export/matrix?{urlencode(params)}"


async def resolve_connectivity_matrix(
    info: Info[ApiContext, None],
    dataset: str,
    body_ids: list[str] | None = None,
    types: list[str] | None = None,
    rois: list[str] | None = None,
    min_weight: int = 1,
    synapse_type: MatrixSynapseType = MatrixSynapseType.CHEMICAL,
    level: MatrixLevel = MatrixLevel.NEURON,
    format: MatrixFormat = MatrixFormat.PARQUET,
) -> ConnectivityMatrix:
    """The matrix between the selected neurons (bodyIds and/or types; default: all)."""
    ids: tuple[int, ...] | None = None
    if body_ids is not None:
        try:
            ids = tuple(int(i, 10) for i in body_ids)
        except ValueError:
            raise QueryError(f"bodyIds must be digits, got {body_ids[:5]}") from None
    try:
        limits = ExportLimits.from_env()
        req = MatrixRequest(
            dataset=dataset, body_ids=ids, types=tuple(types) if types is not None else None,
            rois=tuple(rois) if rois is not None else None, min_weight=min_weight,
            synapse_type=synapse_type.value, level=level.value, format=format.value,
        ).normalized()
    except (ExportError, ValueError) as exc:
        raise QueryError(str(exc)) from None
    await require_read(info, req.dataset)
    try:
        params = query_params(req)
        db, drv = info.context.database, info.context.driver
        check_meta(req, await read(drv, META, params, database=db))
        index = index_from_rows(await read(drv, INDEX, params, database=db))
        check_selection(req, index)
    except (ExportError, ValueError) as exc:
        raise QueryError(str(exc)) from None
    url = _download_url(info, req)
    acc = TypeAccumulator(index) if req.level == "type" else None
    size = len(index) if acc is None else acc.n
    result = ConnectivityMatrix(
        dataset=req.dataset, synapse_type=synapse_type, level=level, size=size, inline=False,
        entry_count=None, labels=None, entries=None, download_url=url)
    if len(index) > limits.inline_neurons:
        return result
    counted = await read(drv, count_query(req), {**params, "limit": limits.inline_edges + 1},
                         database=db)
    if int(counted[0]["n"]) > limits.inline_edges:
        return result
    rows = await read(drv, edges_query(req), {**params, "limit": limits.inline_edges + 1},
                      database=db)
    chunk: Chunk = chunk_from_records(rows, index)
    if acc is not None:
        acc.add(chunk)
        chunk = acc.result()
        labels = [str(v) for v in acc.labels]
    else:
        labels = [str(int(v)) for v in index.ids]
    result.inline = True
    result.entry_count = len(chunk.rows)
    result.labels = labels
    result.entries = [MatrixEntry(pre=labels[r], post=labels[c], weight=int(w))
                      for r, c, w in zip(chunk.rows.tolist(), chunk.cols.tolist(),
                                         chunk.weights.tolist(), strict=True)]
    return result
