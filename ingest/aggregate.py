"""Whole-table facts gathered a part at a time in bounded memory: the first repeated id, and
synapse counts per connection (and per connection and ROI).

Both keep rows of int64 columns in `Buckets`: in memory up to `memory_rows`, then spilled to
hash-partitioned files on disk, so each bucket can be examined alone at the end (a bucket holds
every row of the keys that hash to it). Memory is then a bucket, plus the compact result (16
bytes per connection, 24 per connection and ROI), whatever the number of rows. `GroupSum` folds
small keyed sums (per neuron) with pyarrow's hash aggregation.
"""

from __future__ import annotations

import shutil
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from connectome_query.ingest import spill

COUNT = "n"
"""The column of `GroupSum.result()` that counts the rows folded into each key."""


class GroupSum:
    """Per distinct value of the `keys` columns: the row count (`n`) and the sums of `values`.
    For keys with few distinct values (neurons); memory grows with the distinct keys."""

    def __init__(self, keys: Sequence[str], values: Sequence[str] = (),
                 merge_rows: int = 1_000_000) -> None:
        self.keys = list(keys)
        self.values = list(values)
        self.merge_rows = merge_rows
        self._merged: pa.Table | None = None
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    def _fold(self, table: pa.Table, sums: Sequence[str]) -> pa.Table:
        out = table.group_by(self.keys, use_threads=False).aggregate(
            [(c, "sum") for c in sums])
        return out.rename_columns([c.removesuffix("_sum") for c in out.column_names])

    def add(self, table: pa.Table) -> None:
        """Fold rows (the key and value columns) in."""
        if table.num_rows == 0:
            return
        counted = table.select(self.keys + self.values).append_column(
            COUNT, pa.array(np.ones(table.num_rows, dtype=np.int64)))
        self._pending.append(self._fold(counted, [*self.values, COUNT]))
        self._pending_rows += self._pending[-1].num_rows
        merged = 0 if self._merged is None else self._merged.num_rows
        if self._pending_rows > max(self.merge_rows, merged):
            self._merge()

    def _merge(self) -> None:
        parts = ([self._merged] if self._merged is not None else []) + self._pending
        if parts:
            self._merged = self._fold(pa.concat_tables(parts), [*self.values, COUNT])
        self._pending, self._pending_rows = [], 0

    def result(self) -> pa.Table:
        """Keys, sums and counts, sorted by the keys."""
        self._merge()
        if self._merged is None:
            fields = [(k, pa.int64()) for k in self.keys + self.values + [COUNT]]
            return pa.schema(fields).empty_table()
        return self._merged.select(self.keys + self.values + [COUNT]).sort_by(
            [(k, "ascending") for k in self.keys])


def first_repeat(keys: Sequence[np.ndarray], rows: np.ndarray) -> int | None:
    """Index (into `rows`) of the earliest row whose keys an earlier row already had."""
    if len(rows) < 2:
        return None
    order = np.lexsort((rows, *reversed(keys)))
    same = np.ones(len(rows) - 1, dtype=bool)
    for k in keys:
        ks = k[order]
        same &= ks[1:] == ks[:-1]
    if not same.any():
        return None
    later = order[1:][same]
    return int(later[np.argmin(rows[later])])


_MIX = np.uint64(0x9E3779B97F4A7C15)


def removed_with(owner: object, folder: Path) -> weakref.finalize:
    """Remove `folder` when `owner` is collected or the interpreter exits, should nobody close
    it first (a killed process still leaves it)."""
    return weakref.finalize(owner, shutil.rmtree, folder, True)


class Buckets:
    """Rows of `width` int64 columns, partitioned by a hash of the first `hashed` columns; held in
    memory up to `memory_rows`, then in files under a spill folder (`spill.new_folder`, removed by
    `close`; one left by a killed process is removed by the next load)."""

    COUNT = 64

    def __init__(self, width: int, hashed: int, memory_rows: int = 4_000_000,
                 spill_dir: Path | None = None) -> None:
        self.width = width
        self.hashed = hashed
        self.memory_rows = memory_rows
        self.spill_dir = spill_dir
        self._held: list[np.ndarray] = []
        self._rows = 0
        self._folder: Path | None = None
        self._cleanup: weakref.finalize | None = None

    def add(self, *columns: np.ndarray) -> None:
        self._held.append(np.stack([np.asarray(c, dtype=np.int64) for c in columns], axis=1))
        self._rows += len(columns[0])
        if self._rows > self.memory_rows:
            self._spill()

    def _spill(self) -> None:
        if self._folder is None:
            self._folder = spill.new_folder(self.spill_dir)
            self._cleanup = removed_with(self, self._folder)
        rows = np.concatenate(self._held) if self._held else np.zeros((0, self.width), np.int64)
        self._held, self._rows = [], 0
        mixed = np.zeros(len(rows), dtype=np.uint64)
        for c in range(self.hashed):
            mixed = (mixed ^ rows[:, c].view(np.uint64)) * _MIX
        bucket = (mixed >> np.uint64(58)).astype(np.int64)
        order = np.argsort(bucket, kind="stable")
        bounds = np.searchsorted(bucket[order], np.arange(self.COUNT + 1))
        for b in range(self.COUNT):
            if bounds[b + 1] > bounds[b]:
                with (self._folder / f"{b}.bin").open("ab") as f:
                    rows[order[bounds[b]:bounds[b + 1]]].tofile(f)

    def groups(self, folder: Path | None = None) -> Iterator[np.ndarray]:
        """Each bucket's rows, (n, width): every row of a key is in the same bucket. (Pass the
        folder from `take_folder` to read buckets from there, each file deleted once read.)"""
        folder = folder or self._folder
        if folder is None:
            if self._held:
                yield np.concatenate(self._held)
            return
        if self._held:
            owner, self._folder = self._folder, folder
            self._spill()
            self._folder = owner
        for b in range(self.COUNT):
            path = folder / f"{b}.bin"
            if path.exists():
                rows = np.fromfile(path, dtype=np.int64).reshape(-1, self.width)
                path.unlink()
                yield rows

    def take_folder(self) -> Path | None:
        """The spill folder, which the caller now owns (None when nothing spilled)."""
        folder, self._folder = self._folder, None
        if self._cleanup is not None:
            self._cleanup.detach()
            self._cleanup = None
        return folder

    def close(self) -> None:
        if self._cleanup is not None:
            self._cleanup.detach()
            self._cleanup = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
        self._held, self._rows = [], 0


class RepeatFinder:
    """The first repeated id among many, with the row that repeats it."""

    def __init__(self, memory_ids: int = 4_000_000, spill_dir: Path | None = None) -> None:
        self._buckets = Buckets(2, 1, memory_ids, spill_dir)

    def add(self, ids: np.ndarray, rows: np.ndarray) -> None:
        self._buckets.add(ids, rows)

    def first(self) -> tuple[int, int] | None:
        """(id, row) of the earliest row repeating an earlier row's id; None if all differ."""
        found: list[tuple[int, int]] = []
        try:
            for rows in self._buckets.groups():
                at = first_repeat([rows[:, 0]], rows[:, 1])
                if at is not None:
                    found.append((int(rows[at, 0]), int(rows[at, 1])))
        finally:
            self.close()
        return min(found, key=lambda hit: hit[1]) if found else None

    def close(self) -> None:
        self._buckets.close()


@dataclass
class PairCounts:
    """Synapses per connection and per (connection, ROI), for the connections of one bucket;
    connections as keys `index(pre) * len(bodies) + index(post)` into sorted body ids."""

    keys: np.ndarray
    """Ascending."""
    counts: np.ndarray
    roi_keys: np.ndarray
    """Connection key of each (connection, ROI) row, ascending, ROIs ascending within one."""
    rois: np.ndarray
    roi_counts: np.ndarray

    FIELDS = ("keys", "counts", "roi_keys", "rois", "roi_counts")


def _runs(*sorted_columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts of the runs of equal rows in sorted columns, and their lengths."""
    n = len(sorted_columns[0])
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for c in sorted_columns:
        change[1:] |= c[1:] != c[:-1]
    starts = np.flatnonzero(change)
    return starts, np.diff(np.append(starts, n))


def count_bucket(rows: np.ndarray, bodies: np.ndarray, roi_rank: np.ndarray) -> PairCounts:
    """The counts of one bucket of (pre, post, roi code) rows."""
    nb = np.int64(len(bodies))
    key = np.searchsorted(bodies, rows[:, 0]) * nb + np.searchsorted(bodies, rows[:, 1])
    keys, counts = np.unique(key, return_counts=True)
    has = rows[:, 2] >= 0
    rkey = key[has]
    rank = roi_rank[rows[has, 2]] if len(roi_rank) else rows[has, 2]
    order = np.lexsort((rank, rkey))
    starts, lengths = _runs(rkey[order], rank[order])
    return PairCounts(keys, counts.astype(np.int64), rkey[order][starts], rank[order][starts],
                      lengths)


class PairStore:
    """Synapse counts per connection, kept a bucket at a time (in memory for small tables, in
    files otherwise); every connection's ROI rows are in its connection's bucket."""

    def __init__(self, folder: Path | None, held: list[PairCounts]) -> None:
        self._folder = folder
        self._cleanup = removed_with(self, folder) if folder else None
        self._held = held
        self._files = sorted(folder.glob("pairs-*.npz")) if folder else []
        self.connections = 0
        self.synapses = 0
        for bucket in self.buckets():
            self.connections += len(bucket.keys)
            self.synapses += int(bucket.counts.sum())

    @classmethod
    def empty(cls) -> PairStore:
        return cls(None, [])

    def buckets(self) -> Iterator[PairCounts]:
        yield from self._held
        for path in self._files:
            with np.load(path) as arrays:
                yield PairCounts(*(arrays[f] for f in PairCounts.FIELDS))

    def close(self) -> None:
        if self._cleanup is not None:
            self._cleanup()
            self._cleanup = None
        self._folder = None


class PairCounter:
    """Counts synapses per (pre, post) and per (pre, post, ROI code) in bounded memory."""

    def __init__(self, memory_rows: int = 4_000_000, spill_dir: Path | None = None) -> None:
        self._buckets = Buckets(3, 2, memory_rows, spill_dir)

    def add(self, pre: np.ndarray, post: np.ndarray, roi: np.ndarray) -> None:
        """Synapses from `pre` to `post` in ROI `roi` (a code from 0; -1 for none)."""
        self._buckets.add(pre, post, roi)

    def finish(self, bodies: np.ndarray, roi_rank: np.ndarray) -> PairStore:
        """The counts, with bodies as positions in sorted `bodies` (every pre and post is one)
        and ROI codes replaced by `roi_rank[code]`; the store owns the spill folder."""
        folder = self._buckets.take_folder()
        held: list[PairCounts] = []
        try:
            for b, rows in enumerate(self._buckets.groups(folder)):
                counts = count_bucket(rows, bodies, roi_rank)
                if folder is None:
                    held.append(counts)
                else:
                    np.savez(folder / f"pairs-{b:03d}.npz",
                             **{f: getattr(counts, f) for f in PairCounts.FIELDS})
        except BaseException:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
            raise
        finally:
            self._buckets.close()
        return PairStore(folder, held)

    def close(self) -> None:
        self._buckets.close()
