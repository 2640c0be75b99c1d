"""Connection tables with one row per (pre, post, ROI) — FlyWire/Codex `connections` (one row per
neuropil), neuPrint's `traced-roi-connections` beside its `traced-total-connections` — folded
into one connection per (pre, post) with its per-ROI weights (`rois`, `roiWeights`, and
neuPrint's `roiInfo` JSON), in bounded memory.

Rows are checked a chunk at a time and kept as int64 columns in `aggregate.Buckets`, the store
CAVE synapse tables spill to: in memory up to `spill_rows`, then hash-partitioned by (pre, post)
into files, so one bucket holds every row of its connections. Each bucket is then folded alone
and its connections kept (in memory when nothing spilled, else one Arrow file per bucket) for
`FoldedConnections` to read, twice, a part at a time. Memory: a chunk, the rows held before a
spill (56 bytes a row), and one bucket. A connection keeps the number of its first row for
messages; within a bucket connections come in file order.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from connectome_query.ingest.aggregate import Buckets, GroupSum, removed_with
from connectome_query.ingest.errors import IngestError
from connectome_query.ingest.readers.canonical import check_roi_name
from connectome_query.ingest.readers.files import TableFile
from connectome_query.ingest.scans import spill_settings
from connectome_query.ingest.tables import CONNECTION_SCHEMA, Part

PRE, POST, TAG, ROI, WEIGHT, ROW, EXTRA = range(7)
"""Columns of a held row; TAG is `TOTAL` for a row of a totals file, `PER_ROI` otherwise."""
WIDTH = 7
TOTAL, PER_ROI = 0, 1


def _codes(values: pa.Array, names: dict[str, int]) -> np.ndarray:
    """A code per value (numbered as first seen across chunks), -1 where missing."""
    encoded = pc.dictionary_encode(values)
    table = np.array([names.setdefault(v, len(names)) for v in
                      encoded.dictionary.to_pylist()] or [0], dtype=np.int64)
    idx = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    return np.where(idx >= 0, table[np.maximum(idx, 0)], -1)


@dataclass
class _Found:
    """The earliest row (over every bucket) showing one kind of problem."""

    path: str
    column: str
    message: str = ""
    row: int | None = None

    def offer(self, row: int, message: str) -> None:
        if self.row is None or row < self.row:
            self.row, self.message = row, message

    def raise_if_found(self) -> None:
        if self.row is not None:
            raise IngestError(self.path, self.message, row=self.row, column=self.column)


class RoiFold:
    """Per-ROI rows (and, for neuPrint, the totals they belong to) gathered for folding."""

    def __init__(self, spill_rows: int | None = None, spill_dir: Path | None = None, *,
                 keep_ids: bool = False) -> None:
        """`keep_ids`: gather every body id the rows name (in `ids`)."""
        rows, folder = spill_settings()
        self.keep_ids = keep_ids
        self._ids: list[np.ndarray] = []
        self.spill_dir = spill_dir or folder
        self._buckets = Buckets(WIDTH, 2, spill_rows or max(1, rows // 2), self.spill_dir)
        self.roi_names: dict[str, int] = {}
        self.extra_names: dict[str, int] = {}
        self.roi_rows = 0
        self.total_rows = 0
        self._weight = 0.0
        self.outputs = GroupSum(["pre", "extra"], ["weight"])
        """Weight per (pre, extra code) of the per-ROI rows with an extra column."""

    @property
    def ids(self) -> np.ndarray:
        """Every pre and post body id seen, sorted (with `keep_ids`)."""
        if len(self._ids) != 1:
            self._ids = [np.unique(np.concatenate(self._ids or [np.zeros(0, np.int64)]))]
        return self._ids[0]

    def _hold(self, pre: np.ndarray, post: np.ndarray, tag: int, roi: np.ndarray,
              weight: np.ndarray, first_row: int, extra: np.ndarray) -> None:
        n = len(pre)
        self._buckets.add(pre, post, np.full(n, tag, np.int64), roi, weight,
                          np.arange(first_row, first_row + n, dtype=np.int64), extra)
        if self.keep_ids:
            self._ids.append(np.unique(np.concatenate([pre, post])))

    def add_rois(self, file: TableFile, pre: str, post: str, roi: str, weight: str,
                 extra: str | None, chunk_rows: int) -> None:
        """Every row of a per-ROI file: ids exact, weights whole numbers, ROI names valid."""
        columns = [pre, post, roi, weight, *([extra] if extra else [])]
        for chunk in file.chunks(columns, chunk_rows):
            ids = chunk.integers(pre), chunk.integers(post)
            w = chunk.integers(weight, ids=False)
            names = chunk.texts(roi, required=True)
            before = len(self.roi_names)
            codes = _codes(names, self.roi_names)
            for name in list(self.roi_names)[before:]:
                problem = check_roi_name(name)
                if problem:
                    raise chunk.error(names.to_pylist().index(name), roi, problem)
            self._weight += float(w.astype(np.float64).sum())
            if self._weight >= 2.0**62:
                raise IngestError(file.name, "the total weight exceeds 64-bit integers",
                                  column=weight)
            x = (_codes(chunk.texts(extra), self.extra_names) if extra
                 else np.full(chunk.n, -1, np.int64))
            if extra:
                known = x >= 0
                self.outputs.add(pa.table({"pre": ids[0][known], "extra": x[known],
                                           "weight": w[known]}))
            self._hold(ids[0], ids[1], PER_ROI, codes, w, chunk.first_row, x)
            self.roi_rows += chunk.n
        if not self.roi_rows:
            raise IngestError(file.name, "the file holds no rows")

    def add_totals(self, file: TableFile, pre: str, post: str, weight: str,
                   chunk_rows: int) -> None:
        """Every row of a totals file (one row per pair): ids exact, weights whole numbers."""
        for chunk in file.chunks([pre, post, weight], chunk_rows):
            n = chunk.n
            self._hold(chunk.integers(pre), chunk.integers(post), TOTAL,
                       np.full(n, -1, np.int64), chunk.integers(weight, ids=False),
                       chunk.first_row, np.full(n, -1, np.int64))
            self.total_rows += n

    def fold(self, roi_path: str, roi_column: str, pre_column: str, totals_path: str | None,
             names: dict[str, str], chunk_rows: int) -> FoldedConnections:
        """The connections, one per (pre, post): per-ROI rows alone (Codex), or the totals with
        their pairs' ROI weights (neuPrint; a ROI pair must be among the totals and its ROI
        weights cannot add up to more than its total). Errors name the earliest row."""
        problems = [_Found(roi_path, roi_column, "the same connection and ROI are listed twice"),
                    _Found(roi_path, pre_column),
                    _Found(totals_path or roi_path, names.get("weight", "weight"))]
        labels = _Labels(list(self.roi_names))
        folder = self._buckets.take_folder()
        held: list[pa.Table] = []
        files: list[Path] = []
        count = 0
        try:
            for b, rows in enumerate(self._buckets.groups(folder)):
                table = _fold_bucket(rows, labels, totals_path, problems)
                if any(p.row is not None for p in problems) or not table.num_rows:
                    continue
                count += table.num_rows
                if folder is None:
                    held.append(table)
                    continue
                files.append(folder / f"folded-{b:03d}.arrow")
                with pa.ipc.new_file(str(files[-1]), table.schema) as out:
                    out.write_table(table)
            for problem in problems:
                problem.raise_if_found()
        except BaseException:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
            raise
        finally:
            self._buckets.close()
        return FoldedConnections(totals_path or roi_path, names, held, folder, files, count,
                                 chunk_rows)

    def close(self) -> None:
        self._buckets.close()


@dataclass
class _Labels:
    """ROI names by code, as text and as JSON strings."""

    names: list[str]

    def __post_init__(self) -> None:
        self.text = pa.array(self.names, pa.string())
        self.json = pa.array([json.dumps(n) for n in self.names], pa.string())


_EMPTY = pa.table({
    "bodyIdPre": pa.array([], pa.int64()), "bodyIdPost": pa.array([], pa.int64()),
    "weight": pa.array([], pa.int64()), "roiInfo": pa.array([], pa.string()),
    "rois": pa.array([], pa.list_(pa.string())), "roiWeights": pa.array([], pa.list_(pa.int64())),
    "row": pa.array([], pa.int64())})


def _by_pair(rows: np.ndarray, labels: _Labels, twice: _Found) -> pa.Table:
    """Per-ROI rows as one row per (pre, post), sorted by pair: `bodyIdPre`, `bodyIdPost`,
    `weight` (the sum), `roiInfo`, `rois`, `roiWeights`, `row` (the pair's first row)."""
    if not len(rows):
        return _EMPTY
    order = np.lexsort((rows[:, ROW], rows[:, ROI], rows[:, POST], rows[:, PRE]))
    rows = rows[order]
    pre, post, roi, weight = rows[:, PRE], rows[:, POST], rows[:, ROI], rows[:, WEIGHT]
    same = (pre[1:] == pre[:-1]) & (post[1:] == post[:-1]) & (roi[1:] == roi[:-1])
    if same.any():
        twice.offer(int(rows[1:, ROW][same].min()), twice.message)
    if len(pre) >= 2**31:
        raise IngestError(twice.path, "more than 2^31 rows for one bucket of connections: "
                          "split the table")
    starts = np.flatnonzero(np.r_[True, (pre[1:] != pre[:-1]) | (post[1:] != post[:-1])])
    offsets = pa.array(np.r_[starts, len(pre)].astype(np.int32))
    index = pa.array(roi)
    fragment = pc.binary_join_element_wise(
        pc.take(labels.json, index), ': {"post": ', pc.cast(pa.array(weight), pa.string()),
        "}", "")
    info = pc.binary_join_element_wise(
        "{", pc.binary_join(pa.ListArray.from_arrays(offsets, fragment), ", "), "}", "")
    return pa.table({
        "bodyIdPre": pre[starts], "bodyIdPost": post[starts],
        "weight": np.add.reduceat(weight, starts), "roiInfo": info,
        "rois": pa.ListArray.from_arrays(offsets, pc.take(labels.text, index)),
        "roiWeights": pa.ListArray.from_arrays(offsets, pa.array(weight, pa.int64())),
        "row": np.minimum.reduceat(rows[:, ROW], starts)})


def _fold_bucket(rows: np.ndarray, labels: _Labels, totals_path: str | None,
                 problems: list[_Found]) -> pa.Table:
    """One bucket's connections in canonical columns plus `row`, in file order."""
    twice, missing, over = problems
    grouped = _by_pair(rows[rows[:, TAG] == PER_ROI], labels, twice)
    if totals_path is None:
        table = grouped
    else:
        totals = rows[rows[:, TAG] == TOTAL]
        table = _with_totals(totals, grouped, labels.names, missing, over,
                             Path(totals_path).name)
    n = table.num_rows
    return pa.table({
        "bodyIdPre": table.column("bodyIdPre"), "bodyIdPost": table.column("bodyIdPost"),
        "weight": table.column("weight"), "kind": pa.array(["chemical"] * n, pa.string()),
        "roiInfo": table.column("roiInfo"), "rois": table.column("rois"),
        "roiWeights": table.column("roiWeights"), "row": table.column("row"),
    }).sort_by("row")


def _with_totals(totals: np.ndarray, grouped: pa.Table, roi_names: list[str], missing: _Found,
                 over: _Found, totals_name: str) -> pa.Table:
    """The totals with their pairs' ROI weights (null where the ROI file has none)."""
    keys = pa.table({"bodyIdPre": grouped.column("bodyIdPre"),
                     "bodyIdPost": grouped.column("bodyIdPost"),
                     "roiSum": grouped.column("weight"), "roiRow": grouped.column("row"),
                     "at": np.arange(grouped.num_rows, dtype=np.int64)})
    base = pa.table({"bodyIdPre": totals[:, PRE], "bodyIdPost": totals[:, POST],
                     "weight": totals[:, WEIGHT], "row": totals[:, ROW]})
    joined = base.join(keys, ["bodyIdPre", "bodyIdPost"], join_type="full outer",
                       use_threads=False)
    lost = joined.filter(joined.column("row").is_null())
    if lost.num_rows:
        missing.offer(int(np.min(lost.column("roiRow").to_numpy())),
                      f"this pair is not in {totals_name}")
        return _EMPTY
    total = joined.column("weight").to_numpy()
    sums = joined.column("roiSum").fill_null(0).to_numpy()
    beyond = np.flatnonzero(sums > total)
    if len(beyond):
        rows = joined.column("row").to_numpy()
        i = int(beyond[np.argmin(rows[beyond])])
        over.offer(int(rows[i]), f"ROI weights of this pair add up to {sums[i]}, more than "
                   f"its weight {total[i]}")
    at = joined.column("at")
    for name in ("roiInfo", "rois", "roiWeights"):
        joined = joined.append_column(name, grouped.column(name).take(at))
    return joined


class FoldedConnections:
    """Folded connections (canonical columns plus `row`), in memory or in Arrow files, as a
    `Stream`; the files go when the stream is closed or collected."""

    def __init__(self, path: str, names: dict[str, str], held: list[pa.Table],
                 folder: Path | None, files: list[Path], rows_hint: int,
                 chunk_rows: int) -> None:
        self.path = path
        self.names = names
        self.rows_hint = rows_hint
        self.chunk_rows = chunk_rows
        self._held = held
        self._files = files
        self._cleanup = removed_with(self, folder) if folder else None

    def tables(self) -> Iterator[pa.Table]:
        """The connections a bucket at a time."""
        yield from self._held
        for path in self._files:
            with pa.OSFile(str(path)) as f:
                yield pa.ipc.open_file(f).read_all()

    def _batches(self) -> Iterator[pa.Table]:
        """Buckets joined into tables of about `chunk_rows` (a bucket may be smaller)."""
        waiting: list[pa.Table] = []
        rows = 0
        for table in self.tables():
            waiting.append(table)
            rows += table.num_rows
            if rows >= self.chunk_rows:
                yield pa.concat_tables(waiting).combine_chunks()
                waiting, rows = [], 0
        if waiting:
            yield pa.concat_tables(waiting).combine_chunks()

    def parts(self) -> Iterator[Part]:
        for table in self._batches():
            table = table.append_column("publishedWeight",
                                        pa.nulls(table.num_rows, pa.float64()))
            canonical = table.select(CONNECTION_SCHEMA.names).cast(CONNECTION_SCHEMA)
            rows = table.column("row").to_numpy()
            for start in range(0, table.num_rows, self.chunk_rows):
                yield Part(self.path, rows[start:start + self.chunk_rows],
                           canonical.slice(start, self.chunk_rows))

    def source_column(self, canonical: str) -> str:
        return self.names.get(canonical, canonical)

    def close(self) -> None:
        if self._cleanup is not None:
            self._cleanup()
            self._cleanup = None
