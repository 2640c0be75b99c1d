"""Bulk export of connectivity matrices: the request, the Cypher, and the streaming pipeline.

An export runs in two steps. `prepare` checks the request against the graph (the dataset exists,
the neurons and types asked for exist, the matrix fits the configured caps) and reads the neuron
index: the selected neurons sorted by bodyId, which are the matrix's rows and columns. `write`
then pages through those neurons in keyset order, a few thousand per read-only transaction,
and hands each page's edges to a format writer (`graphql_api.export_formats`) that writes them
to a binary sink at once. Memory stays bounded by the page size (edge lists) and the number of
neurons (the index), never by the number of edges.

Everything here is synchronous: the HTTP route runs it in a worker thread, so a long export
never blocks the event loop that serves other queries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from itertools import chain
from typing import Any, BinaryIO

import neo4j
import numpy as np
import pandas as pd
from neo4j.exceptions import ClientError, ServiceUnavailable

from connectome_query.graphdb.settings import ExportSettings, from_env
from connectome_query.schema.model import DATASET_NAME

FORMATS: dict[str, tuple[str, str]] = {
    "csv": ("text/csv", ".csv"),
    "parquet": ("application/vnd.apache.parquet", ".parquet"),
    "arrow": ("application/vnd.apache.arrow.stream", ".arrows"),
    "npz": ("application/octet-stream", ".npz"),
    "mtx": ("text/x-matrix-market", ".mtx"),
}
"""Format name -> (media type, file suffix)."""

FORMAT_ALIASES = {"ipc": "arrow", "arrows": "arrow", "feather": "arrow", "mm": "mtx",
                  "matrixmarket": "mtx", "pq": "parquet"}
SYNAPSE_TYPES = ("chemical", "electrical")
LEVELS = ("neuron", "type")
UNTYPED = "(untyped)"
"""Type-collapsed label for neurons whose `type` is null."""

NEURON_METADATA = ("bodyId", "instance", "type", "cellClass", "neurotransmitter", "status",
                   "pre", "post", "upstream", "downstream", "gapJunctions", "size",
                   "somaX", "somaY", "somaZ")
"""Columns of the neuron metadata table, in order."""

PAGE_TIMEOUT_S = 120.0


class ExportError(Exception):
    """A request the export cannot serve; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ExportLimits:
    """Caps and tuning, from `CONNECTOME_EXPORT_*` environment variables or defaults."""

    max_edges: int = 50_000_000
    """Most nonzero entries (rows of an edge list) one export may hold."""
    max_neurons: int = 2_000_000
    """Most neurons (matrix rows/columns) one export may select."""
    page_neurons: int = 5_000
    """Neurons whose edges one read transaction fetches."""
    inline_edges: int = 10_000
    """GraphQL answers inline up to this many entries; beyond it, a download URL."""
    inline_neurons: int = 5_000

    @classmethod
    def from_env(cls) -> ExportLimits:
        """The limits `CONNECTOME_EXPORT_*` set (see `graphdb.settings.ExportSettings`)."""
        env = from_env(ExportSettings)
        return cls(max_edges=env.max_edges, max_neurons=env.max_neurons,
                   page_neurons=env.page_neurons, inline_edges=env.inline_edges,
                   inline_neurons=env.inline_neurons)


@dataclass(frozen=True)
class MatrixRequest:
    """What to export. `body_ids` and `types` select neurons (both ends of every edge)."""

    dataset: str
    body_ids: tuple[int, ...] | None = None
    types: tuple[str, ...] | None = None
    rois: tuple[str, ...] | None = None
    min_weight: int = 1
    synapse_type: str = "chemical"
    level: str = "neuron"
    format: str = "parquet"
    neurons: bool = False
    """Embed the neuron metadata table (NPZ); other formats fetch it from /export/neurons."""

    def normalized(self) -> MatrixRequest:
        """The same request checked and canonicalized; ExportError (400) says what is wrong."""
        if not isinstance(self.dataset, str) or not DATASET_NAME.match(self.dataset):
            raise ExportError(f"invalid dataset name {self.dataset!r}")
        fmt = FORMAT_ALIASES.get(str(self.format).lower(), str(self.format).lower())
        if fmt not in FORMATS:
            raise ExportError(f"unknown format {self.format!r}; use one of {', '.join(FORMATS)}")
        kind = str(self.synapse_type).lower()
        if kind not in SYNAPSE_TYPES:
            raise ExportError(f"unknown synapse type {self.synapse_type!r}; use chemical or "
                              "electrical")
        level = str(self.level).lower()
        if level not in LEVELS:
            raise ExportError(f"unknown level {self.level!r}; use neuron or type")
        if isinstance(self.min_weight, bool) or not isinstance(self.min_weight, int):
            raise ExportError(f"minWeight must be an integer, got {self.min_weight!r}")
        if self.min_weight < 0:
            raise ExportError(f"minWeight must be >= 0 (weights are synapse counts), "
                              f"got {self.min_weight}")
        ids = None
        if self.body_ids is not None:
            try:
                ids = tuple(sorted({int(i) for i in self.body_ids}))
            except (TypeError, ValueError):
                raise ExportError("bodyIds must be integers") from None
            if not ids:
                raise ExportError("bodyIds is empty; leave it out to export every neuron")
            if ids[0] < 0 or ids[-1] >= 2**63:
                raise ExportError("bodyIds must be between 0 and 2^63 - 1")
        types = _strings(self.types, "types")
        rois = _strings(self.rois, "rois")
        if rois is not None and kind == "electrical":
            raise ExportError("the ROI filter applies to chemical synapses only: gap junctions "
                              "carry no ROI")
        return replace(self, body_ids=ids, types=types, rois=rois, synapse_type=kind,
                       level=level, format=fmt)

    @property
    def media_type(self) -> str:
        return FORMATS[self.format][0]

    def filename(self) -> str:
        parts = [self.dataset, self.synapse_type]
        if self.level == "type":
            parts.append("by-type")
        return "_".join(parts) + FORMATS[self.format][1]


def _strings(values: Sequence[str] | None, name: str) -> tuple[str, ...] | None:
    if values is None:
        return None
    out = tuple(sorted({str(v) for v in values}))
    if not out or any(not v for v in out):
        raise ExportError(f"{name} must be a non-empty list of non-empty names")
    return out


# -- Cypher ------------------------------------------------------------------------------------
META = """
MATCH (m:Meta {dataset: $dataset})
RETURN m.neuronCount AS neurons, m.chemicalConnections AS chemical,
       m.electricalConnections AS electrical
"""

# Results come back as a few long lists rather than one record per row: the Python driver
# spends tens of microseconds per record, so 139k records cost seconds where 2 lists cost
# a fraction of one. `collect` drops nulls, hence the sentinel for a missing type.
NULL_TYPE = "\u001f(null)"

INDEX = """
MATCH (n:Neuron {dataset: $dataset})
WHERE ($ids IS NULL OR n.bodyId IN $ids) AND ($types IS NULL OR n.type IN $types)
RETURN collect(n.bodyId) AS bodyId, collect(coalesce(n.type, $nullType)) AS type
"""

METADATA = """
UNWIND $ids AS id
MATCH (n:Neuron {dataset: $dataset, bodyId: id})
RETURN collect([n.bodyId, n.instance, n.type, n.cellClass, n.neurotransmitter, n.status,
                n.pre, n.post, n.upstream, n.downstream, n.gapJunctions, n.size,
                n.somaLocation.x, n.somaLocation.y, n.somaLocation.z]) AS rows
"""


def _weight_expr(req: MatrixRequest) -> str:
    if req.rois is None:
        return "c.weight"
    # The synapses of a connection that lie in the requested ROIs (neuPrint's roiInfo post).
    return ("reduce(s = 0, i IN range(0, coalesce(size(c.rois), 0) - 1) | "
            "s + CASE WHEN c.rois[i] IN $rois THEN coalesce(c.roiWeights[i], 0) ELSE 0 END)")


def _pattern(req: MatrixRequest) -> str:
    # Gap junctions are stored once per unordered pair; matched undirected they come back
    # once from each end, which is the symmetric matrix.
    if req.synapse_type == "electrical":
        return "-[c:GapJunction]-"
    return "-[c:ConnectsTo]->"


def _selection_filter(req: MatrixRequest, var: str) -> str:
    """The neuron selection (ids, types) on one end of an edge, `a` (pre) or `b` (post).

    ConnectsTo/GapJunction only join neurons of one dataset (the loader matches both ends by
    dataset), so `b` needs neither a label nor a dataset check.
    """
    parts = ["true"]
    if req.body_ids is not None:
        parts.append(f"{var}.bodyId IN $selected")
    if req.types is not None:
        parts.append(f"{var}.type IN $types")
    return " AND ".join(parts)


def page_query(req: MatrixRequest) -> str:
    """Edges leaving one page of neurons ($page: bodyIds), as three parallel lists."""
    return f"""
UNWIND $page AS id
MATCH (a:Neuron {{dataset: $dataset, bodyId: id}}){_pattern(req)}(b)
WHERE {_selection_filter(req, "b")}
WITH a, b, {_weight_expr(req)} AS w
WHERE w >= $minWeight
RETURN collect(a.bodyId) AS pre, collect(b.bodyId) AS post, collect(w) AS weight
"""


def count_query(req: MatrixRequest) -> str:
    """How many entries the matrix has, counting at most $limit."""
    return f"""
MATCH (a:Neuron {{dataset: $dataset}}){_pattern(req)}(b)
WHERE {_selection_filter(req, "a")} AND {_selection_filter(req, "b")}
WITH {_weight_expr(req)} AS w WHERE w >= $minWeight
WITH 1 AS x LIMIT $limit
RETURN count(x) AS n
"""


def edges_query(req: MatrixRequest) -> str:
    """All entries in one result (for small matrices answered inline)."""
    return f"""
MATCH (a:Neuron {{dataset: $dataset}}){_pattern(req)}(b)
WHERE {_selection_filter(req, "a")} AND {_selection_filter(req, "b")}
WITH a, b, {_weight_expr(req)} AS w WHERE w >= $minWeight
WITH a, b, w LIMIT $limit
RETURN collect(a.bodyId) AS pre, collect(b.bodyId) AS post, collect(w) AS weight
"""


def query_params(req: MatrixRequest) -> dict[str, Any]:
    return {
        "dataset": req.dataset,
        "ids": list(req.body_ids) if req.body_ids is not None else None,
        "selected": list(req.body_ids) if req.body_ids is not None else None,
        "types": list(req.types) if req.types is not None else None,
        "rois": list(req.rois) if req.rois is not None else None,
        "minWeight": req.min_weight,
        "nullType": NULL_TYPE,
    }


# -- the plan ----------------------------------------------------------------------------------
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
    return int(meta["chemical"] or 0)


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


@dataclass
class Chunk:
    """Entries of some rows: row/column positions in the index and weights, sorted."""

    rows: np.ndarray
    cols: np.ndarray
    weights: np.ndarray


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
    @neo4j.unit_of_work(timeout=timeout)
    def work(tx: neo4j.ManagedTransaction) -> list[neo4j.Record]:
        return list(tx.run(cypher, params))

    try:
        with driver.session(database=database, default_access_mode=neo4j.READ_ACCESS,
                            fetch_size=-1) as session:
            return session.execute_read(work)
    except ClientError as exc:
        code = exc.code or ""
        if "TransactionTimedOut" in code or "Terminated" in code:
            raise ExportError(f"a read ran past its {timeout:.0f} s limit; narrow the export",
                              status=504) from None
        raise
    except ServiceUnavailable:
        raise ExportError("the graph database is not reachable right now", status=503) from None


def prepare(driver: neo4j.Driver, request: MatrixRequest, *,
            limits: ExportLimits | None = None, database: str = "neo4j",
            count_entries: bool = True) -> ExportPlan:
    """Check `request` against the graph and read its neuron index (no edges yet)."""
    limits = limits or ExportLimits.from_env()
    req = request.normalized()
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
                     {"dataset": plan.request.dataset, "ids": page})
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


def write(driver: neo4j.Driver, plan: ExportPlan, sink: BinaryIO,
          progress: ProgressFn | None = None) -> ExportStats:
    """Stream the plan's matrix in its format into `sink` (a writable binary file)."""
    from connectome_query.export.formats import open_writer

    req = plan.request
    pages = 0
    if req.level == "type":
        acc = TypeAccumulator(plan.index)
        for chunk in iter_chunks(driver, plan, progress):
            acc.add(chunk)
            pages += 1
        total = acc.result()
        writer = open_writer(req, sink, acc.labels, metadata=plan.metadata)
        try:
            writer.write(total)
            writer.close()
        except BaseException:
            writer.abort()
            raise
        entries = len(total.rows)
    else:
        writer = open_writer(req, sink, plan.index.ids, metadata=plan.metadata)
        entries = 0
        try:
            for chunk in iter_chunks(driver, plan, progress):
                writer.write(chunk)
                entries += len(chunk.rows)
                pages += 1
            writer.close()
        except BaseException:
            writer.abort()
            raise
    plan.stats = ExportStats(neurons=len(plan.index), entries=entries, pages=pages)
    return plan.stats


def collect(driver: neo4j.Driver, plan: ExportPlan) -> tuple[Chunk, np.ndarray]:
    """The whole matrix in memory as (entries, labels); for tests and small matrices."""
    if plan.request.level == "type":
        acc = TypeAccumulator(plan.index)
        for chunk in iter_chunks(driver, plan):
            acc.add(chunk)
        return acc.result(), acc.labels
    parts = list(iter_chunks(driver, plan))
    if not parts:
        empty = np.empty(0, dtype=np.int64)
        return Chunk(empty, empty, empty), plan.index.ids
    return Chunk(*(np.concatenate([getattr(p, f) for p in parts])
                   for f in ("rows", "cols", "weights"))), plan.index.ids
