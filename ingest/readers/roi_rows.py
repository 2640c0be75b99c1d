"""Connection tables with one row per (pre, post, ROI) — FlyWire/Codex `connections` (one row per
neuropil), neuPrint's `traced-roi-connections` — folded into one connection per (pre, post)
with its per-ROI weights (`rois`, `roiWeights`, and neuPrint's `roiInfo` JSON), and a
connection table held in memory as a `Stream`.

The rows of such a file are gathered (checked chunk by chunk, about 40 bytes a row) and grouped
with pyarrow; a connection keeps the row number of its first row for messages.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from connectome_query.graphdb.settings import IngestSettings, from_env
from connectome_query.ingest.errors import IngestError
from connectome_query.ingest.readers.canonical import check_roi_name
from connectome_query.ingest.readers.files import TableFile
from connectome_query.ingest.tables import CONNECTION_SCHEMA, Part


@dataclass
class RoiRows:
    """Checked rows of a per-ROI connection file; `extra` holds one more text column (Codex's
    `nt_type`) as codes into `extra_names`, or None."""

    path: str
    pre: np.ndarray
    post: np.ndarray
    roi: np.ndarray
    """Codes into `roi_names`."""
    weight: np.ndarray
    rows: np.ndarray
    roi_names: list[str]
    extra: np.ndarray | None = None
    extra_names: list[str] | None = None


def _codes(values: pa.Array, names: dict[str, int]) -> np.ndarray:
    """A code per value (numbered as first seen across chunks), -1 where missing."""
    encoded = pc.dictionary_encode(values)
    table = np.array([names.setdefault(v, len(names)) for v in
                      encoded.dictionary.to_pylist()] or [0], dtype=np.int64)
    idx = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    return np.where(idx >= 0, table[np.maximum(idx, 0)], -1)


def gather(file: TableFile, pre: str, post: str, roi: str, weight: str,
           extra: str | None = None, chunk_rows: int | None = None) -> RoiRows:
    """Every row of `file`: ids exact, weights whole numbers, ROI names valid text."""
    chunk_rows = chunk_rows or from_env(IngestSettings).chunk_rows
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("pre", "post", "roi", "w", "rows", "x")}
    rois: dict[str, int] = {}
    extras: dict[str, int] = {}
    columns = [pre, post, roi, weight, *([extra] if extra else [])]
    for chunk in file.chunks(columns, chunk_rows):
        cols["pre"].append(chunk.integers(pre))
        cols["post"].append(chunk.integers(post))
        cols["w"].append(chunk.integers(weight, ids=False))
        names = chunk.texts(roi, required=True)
        before = len(rois)
        cols["roi"].append(_codes(names, rois))
        for name in list(rois)[before:]:
            problem = check_roi_name(name)
            if problem:
                pos = names.to_pylist().index(name)
                raise chunk.error(pos, roi, problem)
        if extra:
            cols["x"].append(_codes(chunk.texts(extra), extras))
        cols["rows"].append(np.arange(chunk.first_row, chunk.first_row + chunk.n,
                                      dtype=np.int64))
    if not cols["rows"]:
        raise IngestError(file.name, "the file holds no rows")
    cat = {k: np.concatenate(v) for k, v in cols.items() if v}
    return RoiRows(file.name, cat["pre"], cat["post"], cat["roi"], cat["w"], cat["rows"],
                   list(rois), cat.get("x"), list(extras) if extra else None)


def by_pair(rows: RoiRows, roi_column: str, pre_column: str) -> pa.Table:
    """One row per (pre, post), sorted: `bodyIdPre`, `bodyIdPost`, `weight` (the sum),
    `roiInfo`, `rois`, `roiWeights` (ROIs by name), `row` (the pair's first row in the file).
    A (pre, post, ROI) listed twice is an error naming its second row."""
    order = np.lexsort((rows.rows, rows.roi, rows.post, rows.pre))
    pre, post, roi = rows.pre[order], rows.post[order], rows.roi[order]
    same = (pre[1:] == pre[:-1]) & (post[1:] == post[:-1]) & (roi[1:] == roi[:-1])
    if same.any():
        twice = rows.rows[order][1:][same]
        raise IngestError(rows.path, "the same connection and ROI are listed twice",
                          row=int(twice.min()), column=roi_column)
    if rows.weight.astype(np.float64).sum() >= 2.0**62:
        raise IngestError(rows.path, "the total weight exceeds 64-bit integers",
                          column=pre_column)
    if len(pre) >= 2**31:
        raise IngestError(rows.path, "more than 2^31 rows: split the table")
    weight = rows.weight[order]
    first_rows = rows.rows[order]
    starts = np.flatnonzero(np.r_[True, (pre[1:] != pre[:-1]) | (post[1:] != post[:-1])])
    offsets = pa.array(np.r_[starts, len(pre)].astype(np.int32))
    roi_index = pa.array(roi)
    names = pc.take(pa.array(rows.roi_names, pa.string()), roi_index)
    quoted = pc.take(pa.array([_json_text(n) for n in rows.roi_names], pa.string()), roi_index)
    fragment = pc.binary_join_element_wise(
        quoted, ': {"post": ', pc.cast(pa.array(weight), pa.string()), "}", "")
    info = pc.binary_join_element_wise(
        "{", pc.binary_join(pa.ListArray.from_arrays(offsets, fragment), ", "), "}", "")
    return pa.table({
        "bodyIdPre": pre[starts], "bodyIdPost": post[starts],
        "weight": np.add.reduceat(weight, starts) if len(pre) else weight,
        "roiInfo": info, "rois": pa.ListArray.from_arrays(offsets, names),
        "roiWeights": pa.ListArray.from_arrays(offsets, pa.array(weight, pa.int64())),
        "row": np.minimum.reduceat(first_rows, starts) if len(pre) else first_rows})


def _json_text(name: str) -> str:
    return json.dumps(name)


class TableStream:
    """A connection table already in memory (canonical columns plus `row`) as a `Stream`."""

    def __init__(self, path: str, table: pa.Table, names: dict[str, str],
                 chunk_rows: int | None = None) -> None:
        self.path = path
        self.table = table
        self.names = names
        self.chunk_rows = chunk_rows or from_env(IngestSettings).chunk_rows
        self.rows_hint = table.num_rows

    def parts(self) -> Iterator[Part]:
        canonical = self.table.select(CONNECTION_SCHEMA.names).cast(CONNECTION_SCHEMA)
        rows = self.table.column("row").to_numpy()
        for start in range(0, self.table.num_rows, self.chunk_rows):
            yield Part(self.path, rows[start:start + self.chunk_rows],
                       canonical.slice(start, self.chunk_rows))

    def source_column(self, canonical: str) -> str:
        return self.names.get(canonical, canonical)


def canonical_connections(grouped: pa.Table) -> pa.Table:
    """`by_pair`'s table with `kind` = chemical, in the canonical column order (plus `row`)."""
    n = grouped.num_rows
    return pa.table({
        "bodyIdPre": grouped.column("bodyIdPre"), "bodyIdPost": grouped.column("bodyIdPost"),
        "weight": grouped.column("weight"), "kind": pa.array(["chemical"] * n, pa.string()),
        "roiInfo": grouped.column("roiInfo"), "rois": grouped.column("rois"),
        "roiWeights": grouped.column("roiWeights"), "row": grouped.column("row")})
