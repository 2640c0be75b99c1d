"""GraphQL `connectivityMatrix`: small matrices inline, a download URL for every matrix.

Thin over `export.inline`: the field builds a `MatrixRequest`, asks `auth.can_read`, reads the
neuron index and, within `ExportLimits.inline_edges` entries and `inline_neurons` neurons, the
entries through the request's async reads; anything larger comes back only as `downloadUrl`
(the streamed `GET /export/matrix`).
"""

from __future__ import annotations

from dataclasses import replace
from enum import Enum
from typing import Annotated

import strawberry
from strawberry.types import Info

from connectome_query.export.inline import matrix_size, read_index, read_inline
from connectome_query.export.request import ExportError, ExportLimits, MatrixRequest
from connectome_query.graphql_api.access import require_dataset
from connectome_query.graphql_api.context import ApiContext
from connectome_query.graphql_api.errors import QueryError
from connectome_query.graphql_api.export_routes import matrix_query


@strawberry.enum(description="Chemical synapses (ConnectsTo), gap junctions (symmetric), or "
                 "neuromodulator edges (Monoamine, Neuropeptide: transmitter-receptor pathways).")
class MatrixSynapseType(Enum):
    CHEMICAL = "chemical"
    ELECTRICAL = "electrical"
    MONOAMINE = "monoamine"
    NEUROPEPTIDE = "neuropeptide"


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


def _body_ids(body_ids: list[str] | None) -> list[int] | None:
    if body_ids is None:
        return None
    try:
        return [int(i, 10) for i in body_ids]
    except ValueError:
        raise QueryError(f"bodyIds must be digits, got {body_ids[:5]}") from None


@strawberry.type
class ExportQuery:
    @strawberry.field(description="Connectivity matrix of a dataset or subset: entries inline "
                      "when small, a download URL (streamed CSV/Parquet/Arrow/NPZ/Matrix Market) "
                      "for any size.")
    async def connectivity_matrix(
        self,
        info: Info[ApiContext, None],
        dataset: str,
        body_ids: list[str] | None = None,
        types: list[str] | None = None,
        rois: list[str] | None = None,
        min_weight: int = 1,
        synapse_type: MatrixSynapseType = MatrixSynapseType.CHEMICAL,
        level: MatrixLevel = MatrixLevel.NEURON,
        format: MatrixFormat = MatrixFormat.PARQUET,
        version: Annotated[int | None, strawberry.argument(
            description="That version of the dataset (default: the current one).")] = None,
    ) -> ConnectivityMatrix:
        """The matrix between the selected neurons (bodyIds and/or types; default: all)."""
        ids = _body_ids(body_ids)
        try:
            limits = ExportLimits.from_env()
            req = MatrixRequest.from_lists(
                dataset, body_ids=ids, types=types, rois=rois, min_weight=min_weight,
                synapse_type=synapse_type.value, level=level.value, format=format.value,
                version=version,
            ).normalized()
        except (ExportError, ValueError) as exc:
            raise QueryError(str(exc)) from None
        req = replace(req, key=await require_dataset(info, req.dataset, version))
        read = info.context.read
        try:
            index = await read_index(read, req)
        except (ExportError, ValueError) as exc:
            raise QueryError(str(exc)) from None
        request = info.context.request
        base = str(request.base_url) if request is not None else "/"
        result = ConnectivityMatrix(
            dataset=req.dataset, synapse_type=synapse_type, level=level,
            size=matrix_size(req, index), inline=False, entry_count=None, labels=None,
            entries=None, download_url=f"{base}export/matrix?{matrix_query(req)}")
        found = await read_inline(read, req, index, limits)
        if found is not None:
            labels, chunk = found.labels, found.entries
            result.inline = True
            result.entry_count = len(chunk.rows)
            result.labels = labels
            result.entries = [
                MatrixEntry(pre=labels[r], post=labels[c], weight=int(w))
                for r, c, w in zip(chunk.rows.tolist(), chunk.cols.tolist(),
                                   chunk.weights.tolist(), strict=True)]
        return result
