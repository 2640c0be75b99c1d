"""The checking pass: read a `Source` once, part by part, check every row and everything that
needs the whole dataset, and keep what the write needs to know in advance (ids, weights,
per-neuron totals). Nothing here touches the database; a `Prepared` dataset is then written by
`loader` or `bulk_import`, which read the streams a second time (`ingest.batches`).

Checks across rows: repeated neuron ids, connections listed twice or to unknown neurons,
repeated synapse ids, synapses on bodies the neuron table lacks (where it must list them), and
totals that must fit in 64 bits. Memory: a part at a time, plus about 40 bytes per connection
and 60 per neuron; synapse ids spill to disk past a few million (`aggregate.RepeatFinder`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from connectome_query.graphdb.settings import IngestSettings, from_env
from connectome_query.ingest.aggregate import (
    GroupSum,
    PairCounter,
    PairCounts,
    RepeatFinder,
    first_repeat,
)
from connectome_query.ingest.classify import ChandelierRule, chandelier_arrays, chandelier_meta
from connectome_query.ingest.errors import IngestError
from connectome_query.ingest.limits import INT64_MAX
from connectome_query.ingest.tables import Part, Source, Stream

Progress = Callable[[str, int, int], None]
"""Called as progress(step, rows_done, rows_total); total 0 when not known in advance."""

_EXACT = 2.0**53


@dataclass
class Pairs:
    """Connections by (pre, post), sorted, with their weights."""

    pre: np.ndarray
    post: np.ndarray
    weight: np.ndarray

    @classmethod
    def empty(cls) -> Pairs:
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z.copy(), z.copy())

    @classmethod
    def from_table(cls, table: pa.Table, weight: str) -> Pairs:
        def col(name: str) -> np.ndarray:
            return table.column(name).to_numpy().astype(np.int64, copy=False)
        return cls(col("bodyIdPre"), col("bodyIdPost"), col(weight))

    def __len__(self) -> int:
        return len(self.pre)


@dataclass
class Prepared:
    """A checked dataset: what the write needs to know before it starts."""

    source: Source
    bodies: np.ndarray
    """Every neuron to write, sorted."""
    listed: np.ndarray
    """The bodies the neuron table lists (sorted); the rest come from synapses only."""
    chemical: Pairs
    electrical: Pairs
    synapse_pairs: Pairs
    """(pre, post) of the synapses, with their counts: the synapse sets."""
    pair_counts: PairCounts
    """The same as keys into `bodies`, with synapses per (pair, ROI rank)."""
    roi_names: list[str]
    """ROI names of the synapses, by rank."""
    synapses: int
    summaries: dict[str, np.ndarray]
    """Per body (aligned with `bodies`): pre, post, downstream, upstream, synapseCount,
    gapJunctions, aisOutputSynapses, aisOutputFraction, chandelier."""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def chemical_from_synapses(self) -> bool:
        return self.source.connections is None

    @property
    def chemical_synapses(self) -> int:
        return int(self.chemical.weight.sum())

    @property
    def gap_junctions(self) -> int:
        return int(self.electrical.weight.sum())

    def body_index(self, ids: np.ndarray) -> np.ndarray:
        """Positions of `ids` in `bodies` (every id is there)."""
        return np.searchsorted(self.bodies, ids)


def _count(step: str, progress: Progress | None, parts: Iterator[Part],
           total: int | None) -> Iterator[Part]:
    done = 0
    for part in parts:
        done += len(part.rows) + part.dropped
        if progress:
            progress(step, done, total or 0)
        yield part


def _step(stream: Stream) -> str:
    return f"checking {stream.path.rsplit('/', 1)[-1]}"


def _neurons(stream: Stream, progress: Progress | None) -> np.ndarray:
    """The ids the neuron table lists, sorted; repeated ids are an error."""
    repeats = RepeatFinder()
    ids: list[np.ndarray] = []
    for part in _count(_step(stream), progress, stream.parts(), _hint(stream)):
        body = part.table.column("bodyId").to_numpy()
        ids.append(body)
        repeats.add(body, part.rows)
    found = repeats.first()
    if found:
        column = stream.source_column("bodyId")
        raise IngestError(stream.path, f"duplicate {column} {found[0]}", row=found[1],
                          column=column)
    return np.sort(np.concatenate(ids)) if ids else np.zeros(0, dtype=np.int64)


def _hint(stream: Stream) -> int | None:
    return getattr(stream, "rows_hint", None)


def _first_unknown(part: Part, stream: Stream, listed: np.ndarray, columns: tuple[str, str],
                   listed_in: str) -> None:
    """Raise for the earliest row of `part` naming a body that `listed` lacks."""
    best: tuple[int, str, int] | None = None
    for column in columns:
        values = part.table.column(column).to_numpy()
        if not len(listed):
            at = 0 if len(values) else None
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


def _connections(stream: Stream, listed: np.ndarray, listed_in: str,
                 progress: Progress | None) -> tuple[Pairs, Pairs]:
    """Chemical and electrical connections, checked; electrical ones as unordered pairs."""
    cols: dict[str, list[np.ndarray]] = {"pre": [], "post": [], "weight": [], "elec": [],
                                         "rows": []}
    for part in _count(_step(stream), progress, stream.parts(), _hint(stream)):
        _first_unknown(part, stream, listed, ("bodyIdPre", "bodyIdPost"), listed_in)
        t = part.table
        cols["pre"].append(t.column("bodyIdPre").to_numpy())
        cols["post"].append(t.column("bodyIdPost").to_numpy())
        cols["weight"].append(t.column("weight").to_numpy())
        cols["elec"].append(pc.equal(t.column("kind"), "electrical").to_numpy())
        cols["rows"].append(part.rows)
    if not cols["rows"]:
        return Pairs.empty(), Pairs.empty()
    pre, post, weight, elec, rows = (np.concatenate(cols[k]) for k in
                                     ("pre", "post", "weight", "elec", "rows"))
    at = first_repeat([pre, post, elec.astype(np.int64)], rows)
    if at is not None:
        raise IngestError(stream.path, "the same connection is listed twice", row=int(rows[at]),
                          column=stream.source_column("bodyIdPre"))
    chem = np.flatnonzero(~elec)
    order = chem[np.lexsort((post[chem], pre[chem]))]
    chemical = Pairs(pre[order], post[order], weight[order])
    lo, hi = np.minimum(pre[elec], post[elec]), np.maximum(pre[elec], post[elec])
    table = pa.table({"bodyIdPre": lo, "bodyIdPost": hi, "weight": weight[elec]})
    if table.num_rows:
        folded = table.group_by(["bodyIdPre", "bodyIdPost"]).aggregate([("weight", "max")])
        table = folded.rename_columns([c.removesuffix("_max") for c in folded.column_names])
        table = table.sort_by([("bodyIdPre", "ascending"), ("bodyIdPost", "ascending")])
    return chemical, Pairs.from_table(table, "weight")


@dataclass
class _SynapseFacts:
    """What the checking pass gathers from a synapse table."""

    count: int = 0
    dropped: int = 0
    pairs: PairCounter = field(default_factory=lambda: PairCounter(spill_dir=_spill_dir()))
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


def _spill_dir() -> Path | None:
    return from_env(IngestSettings).spill_dir


def _synapses(source: Source, stream: Stream, listed: np.ndarray, listed_in: str,
              progress: Progress | None) -> _SynapseFacts:
    facts = _SynapseFacts()
    repeats = RepeatFinder(spill_dir=_spill_dir())
    must_be_listed = source.synapse_bodies == "listed" and source.neurons is not None
    try:
        for part in _count(_step(stream), progress, stream.parts(), _hint(stream)):
            facts.dropped += part.dropped
            facts.count += part.table.num_rows
            repeats.add(part.table.column("synapseId").to_numpy(), part.rows)
            if must_be_listed:
                _first_unknown(part, stream, listed, ("bodyIdPre", "bodyIdPost"), listed_in)
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
        raise IngestError(stream.path, "no valid synapses (every row is an autapse or on root "
                          "id 0)")
    return facts


def _per_body(n: int, index: np.ndarray, weights: np.ndarray | None, what: str,
              where: str) -> np.ndarray:
    """Sums (or counts) per body as int64; an error when one does not fit in 64 bits."""
    if weights is None:
        return np.bincount(index, minlength=n).astype(np.int64)
    approx = np.bincount(index, weights=weights.astype(np.float64), minlength=n)
    if len(approx) and approx.max() >= 2.0**62:
        raise IngestError(where, f"{what} of one neuron exceeds 64-bit integers", column="weight")
    if not len(approx) or approx.max() < _EXACT:
        return approx.astype(np.int64)
    exact = np.zeros(n, dtype=np.int64)
    np.add.at(exact, index, weights)
    return exact


def _summaries(prep_bodies: np.ndarray, chem: Pairs, elec: Pairs, where: str
               ) -> dict[str, np.ndarray]:
    n = len(prep_bodies)
    a, b = np.searchsorted(prep_bodies, chem.pre), np.searchsorted(prep_bodies, chem.post)
    out = {
        "pre": _per_body(n, a, chem.weight, "the synapse total", where),
        "post": _per_body(n, b, chem.weight, "the synapse total", where),
        "downstream": _per_body(n, a, None, "", where),
        "upstream": _per_body(n, b, None, "", where),
    }
    if (out["pre"].astype(np.float64) + out["post"]).max(initial=0) >= 2.0**62:
        raise IngestError(where, "the synapse total of one neuron exceeds 64-bit integers",
                          column="weight")
    out["synapseCount"] = out["pre"] + out["post"]
    ea, eb = np.searchsorted(prep_bodies, elec.pre), np.searchsorted(prep_bodies, elec.post)
    other = elec.pre != elec.post  # a self-coupled cell's junctions count once
    ends = np.concatenate([ea, eb[other]])
    out["gapJunctions"] = _per_body(n, ends, np.concatenate([elec.weight, elec.weight[other]]),
                                    "the gap-junction total", where)
    return out


def _check_total(values: np.ndarray, what: str, where: str) -> None:
    if values.astype(np.float64).sum() >= 2.0**62:
        raise IngestError(where, f"the total {what} exceeds 64-bit integers", column="weight")


def check_meta(meta: dict[str, Any], where: str) -> None:
    """Metadata values Neo4j can store: finite numbers, 64-bit integers, text without NUL, and
    lists of one such type (nested maps are not stored)."""
    for key, value in meta.items():
        if isinstance(value, dict):
            continue
        items = value if isinstance(value, list) else [value]
        kinds = {type(v) for v in items if v is not None}
        problem = None
        if len(kinds) > 1 and not kinds <= {int, float}:
            problem = "a list mixing types"
        for v in items:
            if isinstance(v, bool) or v is None:
                continue
            if isinstance(v, int) and not -INT64_MAX - 1 <= v <= INT64_MAX:
                problem = f"{v} does not fit in 64 bits"
            elif isinstance(v, float) and not math.isfinite(v):
                problem = f"{v} is not finite"
            elif isinstance(v, str) and "\x00" in v:
                problem = "text with a NUL character"
            elif not isinstance(v, int | float | str | list):
                problem = f"a value of type {type(v).__name__}"
        if problem:
            raise IngestError(where, f"metadata field {key!r}: {problem}")


def prepare(source: Source, rule: ChandelierRule | None = None,
            progress: Progress | None = None) -> Prepared:
    """Check every row of `source` and what needs all of it; IngestError naming the first
    problem (its file, row and column)."""
    rule = rule or ChandelierRule()
    check_meta(source.meta, source.name)
    listed = (_neurons(source.neurons, progress) if source.neurons is not None
              else np.zeros(0, dtype=np.int64))
    listed_in = source.neurons.path.rsplit("/", 1)[-1] if source.neurons else "the neurons"
    chemical = electrical = Pairs.empty()
    if source.connections is not None:
        chemical, electrical = _connections(source.connections, listed, listed_in, progress)
    facts = (_synapses(source, source.synapses, listed, listed_in, progress)
             if source.synapses is not None else _SynapseFacts())
    bodies = listed
    if source.synapses is not None and not (source.synapse_bodies == "listed"
                                            and source.neurons is not None):
        seen = facts.bodies.result().column("bodyId").to_numpy()
        bodies = np.union1d(listed, seen)
    if not len(bodies):
        facts.pairs.close()
        raise IngestError(source.name, "no neurons: the input holds no rows")
    roi_names, rank = facts.roi_order()
    counts = facts.pairs.finish(bodies, rank)
    nb = np.int64(len(bodies))
    synapse_pairs = Pairs(bodies[counts.keys // nb], bodies[counts.keys % nb], counts.counts)
    if source.connections is None:
        chemical = synapse_pairs
    _check_total(chemical.weight, "of chemical synapses", source.name)
    _check_total(electrical.weight, "of gap junctions", source.name)
    summaries = _summaries(bodies, chemical, electrical, source.name)
    summaries.update(_chandeliers(bodies, facts, rule))
    meta = dict(source.meta)
    meta.update(chandelier_meta(rule, bool(summaries.pop("classified")[0]),
                                int(summaries["chandelier"].sum())))
    if source.cave_drops:
        meta["droppedSynapses"] = facts.dropped
    return Prepared(source=source, bodies=bodies, listed=listed, chemical=chemical,
                    electrical=electrical, synapse_pairs=synapse_pairs, pair_counts=counts,
                    roi_names=roi_names, synapses=facts.count, summaries=summaries, meta=meta)


def _chandeliers(bodies: np.ndarray, facts: _SynapseFacts,
                 rule: ChandelierRule) -> dict[str, np.ndarray]:
    counts = facts.outputs.result()
    known = np.zeros(len(bodies), dtype=np.int64)
    ais = np.zeros(len(bodies), dtype=np.int64)
    if counts.num_rows:
        at = np.searchsorted(bodies, counts.column("bodyIdPre").to_numpy())
        known[at] = counts.column("known").to_numpy()
        ais[at] = counts.column("ais").to_numpy()
    frac, flag = chandelier_arrays(known, ais, rule)
    return {"aisOutputSynapses": ais, "aisOutputFraction": frac, "chandelier": flag,
            "classified": np.array([bool(known.any())])}
