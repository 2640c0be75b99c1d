"""Bulk export of connectivity matrices: check a request, then stream its matrix to a sink.

An export runs in two steps. `prepare` checks the request against the graph (the dataset exists,
the neurons and types asked for exist, the matrix fits the configured caps) and reads the neuron
index: the selected neurons sorted by bodyId, which are the matrix's rows and columns. `write`
then pages through those neurons in keyset order, a few thousand per read-only transaction, and
hands each page's entries to a format writer (`export.formats`) at once. Memory stays bounded by
the page size and the number of neurons, never by the number of edges.

Everything here is synchronous: the HTTP route runs it in a worker thread (`export.stream`), so
a long export never blocks the event loop that serves other queries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from itertools import chain
from typing import Any, BinaryIO

import neo4j
import numpy as np
import pandas as pd

from connectome_query.export.formats import open_writer
from connectome_query.export.queries import (
    INDEX,
    META,
    METADATA,
    NEURON_METADATA,
    NULL_TYPE,
    count_query,
    page_query,
    query_params,
)
from connectome_query.export.request import Chunk, ExportError, ExportLimits, MatrixRequest
from connectome_query.graphdb import catalog
from connectome_query.graphdb.reads import (
    GraphUnreachable,
    ReadOutOfMemory,
    ReadTimedOut,
    read_records,
)

UNTYPED = "(untyped)"
"""Type-collapsed label for neurons whose `type` is null."""

PAGE_TIMEOUT_S = 120.0
"""Seconds one read of an export (a page of neurons, the index) may run."""


@dataclass
class NeuronIndex:
    """The matrix's rows/columns: selected neurons sorted by bodyId, and their types."""

    ids: np.ndarray
    types: np.ndarray  # object array, None where untyped

    def __len__(self) -> int:
        return len(self.ids)

    def type_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """(code per neuron, sorted type labels) for collapsing by type."""
        labels = np.array([UNTYPED if t is None else str(t) for t in self.types], dtype=object)
        codes, uniques = pd.factorize(labels, sort=True)
        return codes.astype(np.int64), np.asarray(uniques, dtype=object)


def index_from_rows(rows: Sequence[Any]) -> NeuronIndex:
    """The index from the INDEX query's lists (one record)."""
    ids = np.array(rows[0]["bodyId"] if rows else [], dtype=np.int64)
    types = np.array([None if t == NULL_TYPE else t for t in (rows[0]["type"] if rows else [])],
                     dtype=object)
    order = np.argsort(ids, kind="stable")
    return NeuronIndex(ids=ids[order], types=types[order])


def check_selection(req: MatrixRequest, index: NeuronIndex) -> None:
    """Unknown neurons or types are errors, not silently empty rows."""
    if req.body_ids is not None and len(index) < len(req.body_ids):
        missing = np.setdiff1d(np.asarray(req.body_ids, dtype=np.int64), index.ids)[:5]
        what = " of these types" if req.types is not None else ""
        raise ExportError(f"unknown bodyIds{what} in dataset {req.dataset!r}: "
                          f"{[int(m) for m in missing]}", status=404)
    if req.types is not None:
        present = {t for t in index.types if t is not None}
        missing_types = [t for t in req.types if t not in present]
        if missing_types and req.body_ids is None:
            raise ExportError(f"unknown types in dataset {req.dataset!r}: {missing_types[:5]}",
                              status=404)
    if len(index) == 0:
        raise ExportError("the selection holds no neurons", status=404)


def check_meta(req: MatrixRequest, rows: Sequence[Any]) -> int:
    """The dataset's entry count upper bound (from Meta); 404 for an unknown dataset."""
    if not rows:
        raise ExportError(f"unknown dataset {req.dataset!r}", status=404)
    meta = rows[0]
    if req.synapse_type == "electrical":
        return 2 * int(meta["electrical"] or 0)
    return int(meta[req.synapse_type] or 0)


def check_size(limits: ExportLimits, neurons: int, entries: int | None) -> None:
    if neurons > limits.max_neurons:
        raise ExportError(
            f"the request selects {neurons:,} neurons, more than this server's cap of "
            f"{limits.max_neurons:,} (CONNECTOME_EXPORT_MAX_NEURONS); narrow it with bodyIds "
            "or types", status=413)
    if entries is not None and entries > limits.max_edges:
        raise ExportError(
            f"the matrix has more than {limits.max_edges:,} entries, this server's cap "
            "(CONNECTOME_EXPORT_MAX_EDGES); narrow it with minWeight, bodyIds, types or rois",
            status=413)


def chunk_from_records(records: Sequence[Any], index: NeuronIndex) -> Chunk:
    """Turn records of parallel lists ([pre], [post], [weight]) into sorted index positions."""
    total = sum(len(r["post"]) for r in records)

    def column(name: str) -> np.ndarray:
        return np.fromiter(chain.from_iterable(r[name] for r in records), dtype=np.int64,
                           count=total)

    pre, post, weight = column("pre"), column("post"), column("weight")
    rows = np.searchsorted(index.ids, pre)
    cols = np.searchsorted(index.ids, post)
    n = len(index)
    keep = (rows < n) & (cols < n)
    keep[keep] &= (index.ids[rows[keep]] == pre[keep]) & (index.ids[cols[keep]] == post[keep])
    rows, cols, weight = rows[keep], cols[keep], weight[keep]
    order = np.lexsort((cols, rows))
    return Chunk(rows=rows[order], cols=cols[order], weights=weight[order])


class TypeAccumulator:
    """Sums neuron-level entries into type x type entries; memory ~ the number of type pairs."""

    def __init__(self, index: NeuronIndex) -> None:
        self.codes, self.labels = index.type_codes()
        self.n = len(self.labels)
        self.keys = np.empty(0, dtype=np.int64)
        self.sums = np.empty(0, dtype=np.int64)
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending_rows = 0

    def add(self, chunk: Chunk) -> None:
        keys = self.codes[chunk.rows] * self.n + self.codes[chunk.cols]
        self._pending.append((keys, chunk.weights))
        self._pending_rows += len(keys)
        if self._pending_rows > 2_000_000:
            self._reduce()

    def _reduce(self) -> None:
        if not self._pending:
            return
        keys = np.concatenate([self.keys, *(k for k, _ in self._pending)])
        sums = np.concatenate([self.sums, *(w for _, w in self._pending)])
        self._pending, self._pending_rows = [], 0
        uniq, inverse = np.unique(keys, return_inverse=True)
        self.keys = uniq
        self.sums = np.bincount(inverse, weights=sums, minlength=len(uniq)).astype(np.int64)

    def result(self) -> Chunk:
        self._reduce()
        return Chunk(rows=self.keys // self.n, cols=self.keys % self.n, weights=self.sums)


@dataclass
class Progress:
    """What an export has done so far (passed to the progress callback)."""

    neurons_done: int
    neurons_total: int
    entries: int


ProgressFn = Callable[[Progress], None]


@dataclass
class ExportStats:
    neurons: int
    entries: int
    pages: int
    bytes_written: int = 0


@dataclass
class ExportPlan:
    """A checked request and its neuron index, ready to write."""

    request: MatrixRequest
    index: NeuronIndex
    limits: ExportLimits
    database: str = "neo4j"
    metadata: pd.DataFrame | None = None
    stats: ExportStats | None = field(default=None)

    @property
    def shape(self) -> tuple[int, int]:
        if self.request.level == "type":
            n = len(np.unique(self.index.type_codes()[0]))
            return n, n
        return len(self.index), len(self.index)


def _read(driver: neo4j.Driver, database: str, cypher: str, params: dict[str, Any],
          timeout: float = PAGE_TIMEOUT_S) -> list[neo4j.Record]:
    try:
        return read_records(driver, cypher, params, database=database, timeout=timeout)
    except ReadTimedOut:
        raise ExportError(f"a read ran past its {timeout:.0f} s limit; narrow the export",
                          status=504) from None
    except ReadOutOfMemory:
        raise ExportError("a read needed more memory than the server gives one query; narrow "
                          "the export", status=413) from None
    except GraphUnreachable:
        raise ExportError("the graph database is not reachable right now", status=503) from None


def prepare(driver: neo4j.Driver, request: MatrixRequest, *,
            limits: ExportLimits | None = None, database: str = "neo4j",
            count_entries: bool = True) -> ExportPlan:
    """Check `request` against the graph and read its neuron index (no edges yet)."""
    limits = limits or ExportLimits.from_env()
    req = request.normalized()
    try:
        req = replace(req, key=catalog.resolve(driver, req.dataset, req.version,
                                               database=database).key)
    except catalog.UnknownDataset as exc:
        raise ExportError(str(exc), status=404) from None
    params = query_params(req)
    bound = check_meta(req, _read(driver, database, META, params))
    index = index_from_rows(_read(driver, database, INDEX, params))
    check_selection(req, index)
    check_size(limits, len(index), None)
    if count_entries and bound > limits.max_edges:
        counted = _read(driver, database, count_query(req),
                        {**params, "limit": limits.max_edges + 1})
        check_size(limits, len(index), int(counted[0]["n"]))
    plan = ExportPlan(request=req, index=index, limits=limits, database=database)
    if req.neurons:
        plan.metadata = read_metadata(driver, plan)
    return plan


def read_metadata(driver: neo4j.Driver, plan: ExportPlan) -> pd.DataFrame:
    """The neuron table for the plan's neurons, in matrix order (sorted by bodyId)."""
    frames = []
    ids = plan.index.ids
    step = max(plan.limits.page_neurons, 10_000)
    for start in range(0, len(ids), step):
        page = [int(i) for i in ids[start:start + step]]
        rows = _read(driver, plan.database, METADATA,
                     {"dataset": plan.request.key, "ids": page})
        frames.append(pd.DataFrame(rows[0]["rows"] if rows else [],
                                   columns=list(NEURON_METADATA)))
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=list(NEURON_METADATA))
    table = table.sort_values("bodyId", kind="stable").reset_index(drop=True)
    for col in ("bodyId", "pre", "post", "upstream", "downstream", "gapJunctions"):
        table[col] = pd.to_numeric(table[col]).fillna(0).astype("int64")
    for col in ("size", "somaX", "somaY", "somaZ"):
        table[col] = pd.to_numeric(table[col], errors="coerce").astype("float64")
    for col in ("instance", "type", "cellClass", "neurotransmitter", "status"):
        table[col] = table[col].astype(object).where(table[col].notna(), None)
    return table


def iter_chunks(driver: neo4j.Driver, plan: ExportPlan,
                progress: ProgressFn | None = None) -> Iterator[Chunk]:
    """Neuron-level entries, page by page in row order; the next page is read while the
    caller writes this one."""
    req, ids = plan.request, plan.index.ids
    cypher = page_query(req)
    base = query_params(req)
    step = plan.limits.page_neurons
    starts = list(range(0, len(ids), step))
    entries = 0

    def fetch(start: int) -> list[neo4j.Record]:
        page = [int(i) for i in ids[start:start + step]]
        return _read(driver, plan.database, cypher, {**base, "page": page})

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="export-page") as pool:
        pending: Future[list[neo4j.Record]] | None = (
            pool.submit(fetch, starts[0]) if starts else None)
        for k, start in enumerate(starts):
            assert pending is not None
            records = pending.result()
            pending = pool.submit(fetch, starts[k + 1]) if k + 1 < len(starts) else None
            try:
                chunk = chunk_from_records(records, plan.index)
                del records
                entries += len(chunk.rows)
                if entries > plan.limits.max_edges:
                    check_size(plan.limits, len(ids), entries)
                yield chunk
                if progress:
                    progress(Progress(min(start + step, len(ids)), len(ids), entries))
            except BaseException:
                if pending is not None:
                    pending.cancel()
                raise


def _type_matrix(chunks: Iterable[Chunk], index: NeuronIndex) -> tuple[Chunk, np.ndarray, int]:
    """Neuron-level chunks summed into one type x type chunk: (entries, labels, pages read)."""
    acc = TypeAccumulator(index)
    pages = 0
    for chunk in chunks:
        acc.add(chunk)
        pages += 1
    return acc.result(), acc.labels, pages


def write(driver: neo4j.Driver, plan: ExportPlan, sink: BinaryIO,
          progress: ProgressFn | None = None) -> ExportStats:
    """Stream the plan's matrix in its format into `sink` (a writable binary file)."""
    chunks: Iterable[Chunk] = iter_chunks(driver, plan, progress)
    labels = plan.index.ids
    pages_read = None
    if plan.request.level == "type":  # the whole (small) type matrix, then one write
        total, labels, pages_read = _type_matrix(chunks, plan.index)
        chunks = [total]
    writer = open_writer(plan.request, sink, labels, metadata=plan.metadata)
    entries = pages = 0
    try:
        for chunk in chunks:
            writer.write(chunk)
            entries += len(chunk.rows)
            pages += 1
        writer.close()
    except BaseException:
        writer.abort()
        raise
    plan.stats = ExportStats(neurons=len(plan.index), entries=entries,
                             pages=pages if pages_read is None else pages_read)
    return plan.stats


def collect(driver: neo4j.Driver, plan: ExportPlan) -> tuple[Chunk, np.ndarray]:
    """The whole matrix in memory as (entries, labels); for tests and small matrices."""
    if plan.request.level == "type":
        total, labels, _ = _type_matrix(iter_chunks(driver, plan), plan.index)
        return total, labels
    parts = list(iter_chunks(driver, plan))
    if not parts:
        empty = np.empty(0, dtype=np.int64)
        return Chunk(empty, empty, empty), plan.index.ids
    return Chunk(*(np.concatenate([getattr(p, f) for p in parts])
                   for f in ("rows", "cols", "weights"))), plan.index.ids
