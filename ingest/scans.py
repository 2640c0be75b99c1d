"""Reading each table of a source once, part by part, for the checking pass (`ingest.prepare`):
the checks across rows, and the per-neuron totals the write needs, in bounded memory.

Neuron ids are held (8 bytes a neuron); repeated connections and synapse ids are found through
`aggregate.RepeatFinder`, and synapses are counted per connection through
`aggregate.PairCounter`, both of which spill to disk. Gap junctions are held in memory (tables
list thousands, not millions).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from connectome_query.graphdb.settings import IngestSettings, from_env
from connectome_query.ingest.aggregate import GroupSum, PairCounter, RepeatFinder
from connectome_query.ingest.errors import IngestError
from connectome_query.ingest.tables import Part, Source, Stream

Progress = Callable[[str, int, int], None]
"""Called as progress(step, rows_done, rows_total); total 0 when not known in advance."""

_LIMIT = 2.0**62
"""Per-neuron and dataset totals must stay below this (they are stored as 64-bit longs, and
synapseCount adds two of them)."""


def return_freed_memory(threshold: int = 1 << 20) -> bool:
    """Have glibc serve allocations of `threshold` bytes and more by mmap, so memory a chunk
    frees goes back to the system. (By default glibc raises that threshold after the first large
    free, and a long stream of chunk-sized arrays then grows the heap by fragments: about 50 MB
    per million synapses.) False where there is no glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_mmap_threshold = -3
    return bool(libc.mallopt(m_mmap_threshold, threshold))


def spill_settings() -> tuple[int, Path | None]:
    settings = from_env(IngestSettings)
    return settings.spill_rows, settings.spill_dir


def counted(stream: Stream, progress: Progress | None) -> Iterator[Part]:
    """The stream's parts, reporting rows read as `checking FILE`."""
    step = f"checking {stream.path.rsplit('/', 1)[-1]}"
    total = getattr(stream, "rows_hint", None) or 0
    done = 0
    for part in stream.parts():
        done += len(part.rows) + part.dropped
        if progress:
            progress(step, done, total)
        yield part


def first_unknown(part: Part, stream: Stream, listed: np.ndarray, listed_in: str) -> None:
    """Raise for the earliest row of `part` whose pre or post body `listed` lacks."""
    best: tuple[int, str, int] | None = None
    for column in ("bodyIdPre", "bodyIdPost"):
        values = part.table.column(column).to_numpy()
        if not len(values):
            continue
        if not len(listed):
            at: int | None = 0
        else:
            pos = np.searchsorted(listed, values).clip(0, len(listed) - 1)
            hits = np.flatnonzero(listed[pos] != values)
            at = int(hits[0]) if len(hits) else None
        if at is not None and (best is None or part.rows[at] < part.rows[best[0]]):
            best = (at, column, int(values[at]))
    if best is not None:
        at, column, value = best
        raise IngestError(part.path, f"{value} is not in {listed_in}", row=int(part.rows[at]),
                          column=stream.source_column(column))


class Totals:
    """Per-neuron sums and counts, added a part at a time, checked against 64 bits."""

    NAMES = ("pre", "post", "downstream", "upstream", "gapJunctions")

    def __init__(self, n: int, where: str) -> None:
        self.where = where
        self.sums = {name: np.zeros(n, dtype=np.int64) for name in self.NAMES}

    def add(self, name: str, index: np.ndarray, weights: np.ndarray | None = None) -> None:
        n = len(self.sums[name])
        if weights is None:
            self.sums[name] += np.bincount(index, minlength=n).astype(np.int64)
            return
        approx = np.bincount(index, weights=weights.astype(np.float64), minlength=n)
        if (approx + self.sums[name]).max(initial=0) >= _LIMIT:
            raise IngestError(self.where, f"the {name} synapse total of one neuron exceeds "
                              "64-bit integers", column="weight")
        if approx.max(initial=0) < 2.0**53:
            self.sums[name] += approx.astype(np.int64)
        else:
            np.add.at(self.sums[name], index, weights)

    def connections(self, pre: np.ndarray, post: np.ndarray, weight: np.ndarray) -> None:
        """Chemical connections (as body positions) with their weights."""
        self.add("pre", pre, weight)
        self.add("post", post, weight)
        self.add("downstream", pre)
        self.add("upstream", post)

    def result(self) -> dict[str, np.ndarray]:
        out = dict(self.sums)
        if (out["pre"].astype(np.float64) + out["post"]).max(initial=0) >= _LIMIT:
            raise IngestError(self.where, "the synapse total of one neuron exceeds 64-bit "
                              "integers", column="weight")
        out["synapseCount"] = out["pre"] + out["post"]
        return out


def check_total(total: float, what: str, where: str) -> float:
    if total >= _LIMIT:
        raise IngestError(where, f"the total {what} exceeds 64-bit integers", column="weight")
    return total


@dataclass
class ConnectionFacts:
    """What the checking pass learns from a connection table."""

    chemical: int = 0
    chemical_synapses: int = 0
    gap: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    """Gap junctions as (lower body position, higher, weight), one per unordered pair."""


def scan_connections(stream: Stream, bodies: np.ndarray, listed_in: str, totals: Totals,
                     progress: Progress | None) -> ConnectionFacts:
    """Check a connection table against the listed `bodies`; add its chemical weights to
    `totals`; collapse gap junctions to one per unordered pair (the larger weight)."""
    facts = ConnectionFacts()
    nb = np.int64(len(bodies))
    repeats = RepeatFinder(*spill_settings())
    gaps: list[np.ndarray] = []
    try:
        for part in counted(stream, progress):
            first_unknown(part, stream, bodies, listed_in)
            t = part.table
            a = np.searchsorted(bodies, t.column("bodyIdPre").to_numpy())
            b = np.searchsorted(bodies, t.column("bodyIdPost").to_numpy())
            weight = t.column("weight").to_numpy()
            elec = pc.equal(t.column("kind"), "electrical").to_numpy(zero_copy_only=False)
            repeats.add((a * nb + b) * 2 + elec, part.rows)
            chem = ~elec
            totals.connections(a[chem], b[chem], weight[chem])
            facts.chemical += int(chem.sum())
            approx = float(weight[chem].astype(np.float64).sum())
            check_total(facts.chemical_synapses + approx, "of chemical synapses", stream.path)
            facts.chemical_synapses += int(weight[chem].sum())
            if elec.any():
                gaps.append(np.stack([np.minimum(a, b)[elec], np.maximum(a, b)[elec],
                                      weight[elec]], axis=1))
        found = repeats.first()
    finally:
        repeats.close()
    if found:
        raise IngestError(stream.path, "the same connection is listed twice", row=found[1],
                          column=stream.source_column("bodyIdPre"))
    facts.gap = _collapse(np.concatenate(gaps) if gaps else np.zeros((0, 3), dtype=np.int64))
    return facts


def _collapse(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One row per (lo, hi), the largest weight, sorted."""
    order = np.lexsort((-rows[:, 2], rows[:, 1], rows[:, 0]))
    rows = rows[order]
    keep = np.ones(len(rows), dtype=bool)
    keep[1:] = (rows[1:, 0] != rows[:-1, 0]) | (rows[1:, 1] != rows[:-1, 1])
    rows = rows[keep]
    return rows[:, 0], rows[:, 1], rows[:, 2]


@dataclass
class SynapseFacts:
    """What the checking pass gathers from a synapse table."""

    count: int = 0
    dropped: int = 0
    pairs: PairCounter = field(default_factory=lambda: PairCounter(*spill_settings()))
    roi_codes: dict[str, int] = field(default_factory=dict)
    outputs: GroupSum = field(default_factory=lambda: GroupSum(["bodyIdPre"], ["known", "ais"]))
    bodies: GroupSum = field(default_factory=lambda: GroupSum(["bodyId"]))

    def add(self, t: pa.Table, keep_bodies: bool) -> None:
        pre, post = t.column("bodyIdPre").to_numpy(), t.column("bodyIdPost").to_numpy()
        self.pairs.add(pre, post, self._roi_codes(t.column("roi").combine_chunks()))
        comp = t.column("postCompartment")
        known = pc.cast(pc.not_equal(comp, "unknown"), pa.int64())
        ais = pc.cast(pc.equal(comp, "ais"), pa.int64())
        self.outputs.add(pa.table({"bodyIdPre": pre, "known": known, "ais": ais}))
        if keep_bodies:
            self.bodies.add(pa.table({"bodyId": np.concatenate([pre, post])}))

    def _roi_codes(self, roi: pa.Array) -> np.ndarray:
        """A code per synapse for its ROI name (numbered as first seen), -1 where none."""
        if roi.null_count == len(roi):
            return np.full(len(roi), -1, dtype=np.int64)
        encoded = pc.dictionary_encode(roi)
        codes = np.array([self.roi_codes.setdefault(name, len(self.roi_codes))
                          for name in encoded.dictionary.to_pylist()], dtype=np.int64)
        indices = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
        return np.where(indices >= 0, codes[np.maximum(indices, 0)], -1)

    def roi_order(self) -> tuple[list[str], np.ndarray]:
        """ROI names in order, and each code's rank among them."""
        names = sorted(self.roi_codes)
        rank = np.empty(len(names), dtype=np.int64)
        for r, name in enumerate(names):
            rank[self.roi_codes[name]] = r
        return names, rank


def scan_synapses(source: Source, stream: Stream, listed: np.ndarray, listed_in: str,
                  progress: Progress | None) -> SynapseFacts:
    """Check a synapse table; count its synapses per connection and per neuron's outputs."""
    facts = SynapseFacts()
    repeats = RepeatFinder(*spill_settings())
    must_be_listed = source.synapse_bodies == "listed" and source.neurons is not None
    try:
        for part in counted(stream, progress):
            facts.dropped += part.dropped
            facts.count += part.table.num_rows
            repeats.add(part.table.column("synapseId").to_numpy(), part.rows)
            if must_be_listed:
                first_unknown(part, stream, listed, listed_in)
            facts.add(part.table, keep_bodies=not must_be_listed)
        found = repeats.first()
    except BaseException:
        facts.pairs.close()
        raise
    finally:
        repeats.close()
    if found:
        facts.pairs.close()
        raise IngestError(stream.path, f"duplicate synapse id {found[0]}", row=found[1],
                          column=stream.source_column("synapseId"))
    if facts.count == 0 and source.cave_drops:
        facts.pairs.close()
        raise IngestError(stream.path, "no valid synapses (every row is an autapse or on root "
                          "id 0)")
    return facts
