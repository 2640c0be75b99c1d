"""Small matrices answered in one go, for the GraphQL field; larger ones only as a download.

The field reads through the API's async driver, and export does not depend on the API, so the
reader is passed in: an async function from (Cypher, parameters) to rows. The checks and the
Cypher are those of the streamed export; only the reading differs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from connectome_query.export.matrix import (
    NeuronIndex,
    TypeAccumulator,
    check_meta,
    check_selection,
    chunk_from_records,
    index_from_rows,
)
from connectome_query.export.queries import INDEX, META, count_query, edges_query, query_params
from connectome_query.export.request import Chunk, ExportLimits, MatrixRequest

AsyncRead = Callable[[str, dict[str, Any]], Awaitable[list[dict[str, Any]]]]
"""(Cypher, parameters) -> rows, in a read transaction."""


@dataclass
class InlineMatrix:
    """Every entry of a small matrix, with the row (= column) labels in order."""

    labels: list[str]
    entries: Chunk


async def read_index(read: AsyncRead, req: MatrixRequest) -> NeuronIndex:
    """The checked neuron index of a normalized request (ExportError names what is wrong)."""
    params = query_params(req)
    check_meta(req, await read(META, params))
    index = index_from_rows(await read(INDEX, params))
    check_selection(req, index)
    return index


def matrix_size(req: MatrixRequest, index: NeuronIndex) -> int:
    """Rows (= columns) of the matrix: neurons, or types when collapsed."""
    return TypeAccumulator(index).n if req.level == "type" else len(index)


async def read_inline(read: AsyncRead, req: MatrixRequest, index: NeuronIndex,
                      limits: ExportLimits) -> InlineMatrix | None:
    """All entries when the matrix is within the inline caps, else None (counting stops just
    past the cap, so a large matrix costs no more than a small one here)."""
    if len(index) > limits.inline_neurons:
        return None
    params = {**query_params(req), "limit": limits.inline_edges + 1}
    counted = await read(count_query(req), params)
    if int(counted[0]["n"]) > limits.inline_edges:
        return None
    chunk = chunk_from_records(await read(edges_query(req), params), index)
    if req.level != "type":
        return InlineMatrix(labels=[str(int(v)) for v in index.ids], entries=chunk)
    acc = TypeAccumulator(index)
    acc.add(chunk)
    return InlineMatrix(labels=[str(v) for v in acc.labels], entries=acc.result())
