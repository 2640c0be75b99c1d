"""The checking pass: read a `Source` once, part by part (`ingest.scans`), check every row and
everything that needs the whole dataset, and keep what the write needs to know in advance
(neuron ids, per-neuron totals, synapse counts per connection). Nothing here touches the
database; a `Prepared` dataset is then written by `loader` or `bulk_import`, which read the
streams a second time (`ingest.batches`).

Checks across rows: repeated neuron ids, connections listed twice or to unknown neurons,
repeated synapse ids, synapses on bodies the neuron table lacks (where it must list them), and
totals that must fit in 64 bits. Memory: a part at a time, plus about 100 bytes per neuron;
what grows with connections or synapses spills to disk (`aggregate`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from connectome_query.ingest import spill
from connectome_query.ingest.aggregate import PairStore, RepeatFinder
from connectome_query.ingest.classify import ChandelierRule, chandelier_arrays, chandelier_meta
from connectome_query.ingest.errors import IngestError
from connectome_query.ingest.limits import INT64_MAX
from connectome_query.ingest.scans import (
    Progress,
    SynapseFacts,
    Totals,
    check_total,
    counted,
    return_freed_memory,
    scan_connections,
    scan_synapses,
    spill_settings,
)
from connectome_query.ingest.tables import Source, Stream


@dataclass
class Pairs:
    """Connections by (pre, post) body id, with their weights."""

    pre: np.ndarray
    post: np.ndarray
    weight: np.ndarray

    def __len__(self) -> int:
        return len(self.pre)


@dataclass
class Prepared:
    """A checked dataset: what the write needs to know before it starts. `close()` removes
    what the checking pass spilled to disk."""

    source: Source
    bodies: np.ndarray
    """Every neuron to write, sorted."""
    listed: np.ndarray
    """The bodies the neuron table lists (sorted); the rest come from synapses only."""
    chemical_connections: int
    chemical_synapses: int
    electrical: Pairs
    pairs: PairStore
    """Synapses per (pre, post) (the synapse sets; the chemical connections when there is no
    connection table) and per (pre, post, ROI rank)."""
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
    def gap_junctions(self) -> int:
        return int(self.electrical.weight.sum())

    def body_index(self, ids: np.ndarray) -> np.ndarray:
        """Positions of `ids` in `bodies` (every id is there)."""
        return np.searchsorted(self.bodies, ids)

    def close(self) -> None:
        self.pairs.close()


def _neurons(stream: Stream, progress: Progress | None) -> np.ndarray:
    """The ids the neuron table lists, sorted; repeated ids are an error."""
    repeats = RepeatFinder()
    ids: list[np.ndarray] = []
    for part in counted(stream, progress):
        body = part.table.column("bodyId").to_numpy()
        ids.append(body)
        repeats.add(body, part.rows)
    found = repeats.first()
    if found:
        column = stream.source_column("bodyId")
        raise IngestError(stream.path, f"duplicate {column} {found[0]}", row=found[1],
                          column=column)
    return np.sort(np.concatenate(ids)) if ids else np.zeros(0, dtype=np.int64)


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
            elif not isinstance(v, int | float | str):
                problem = f"a value of type {type(v).__name__}"
        if problem:
            raise IngestError(where, f"metadata field {key!r}: {problem}")


def _bodies(source: Source, listed: np.ndarray, facts: SynapseFacts) -> np.ndarray:
    if source.synapses is None or (source.synapse_bodies == "listed"
                                   and source.neurons is not None):
        return listed
    return np.union1d(listed, facts.bodies.result().column("bodyId").to_numpy())


def prepare(source: Source, rule: ChandelierRule | None = None,
            progress: Progress | None = None) -> Prepared:
    """Check every row of `source` and what needs all of it; IngestError naming the first
    problem (its file, row and column)."""
    rule = rule or ChandelierRule()
    return_freed_memory()
    spill.sweep(spill_settings()[1])  # what killed loads left behind
    check_meta(source.meta, source.name)
    listed = (_neurons(source.neurons, progress) if source.neurons is not None
              else np.zeros(0, dtype=np.int64))
    listed_in = source.neurons.path.rsplit("/", 1)[-1] if source.neurons else "the neurons"
    if source.connections is not None and not len(listed):
        raise IngestError(source.name, "no neurons: the input holds no rows")
    totals = Totals(len(listed), source.name)
    conns = None
    if source.connections is not None:  # connections need listed neurons: bodies == listed
        conns = scan_connections(source.connections, listed, listed_in, totals, progress)
    facts = SynapseFacts()
    if source.synapses is not None:
        facts = scan_synapses(source, source.synapses, listed, listed_in, progress)
    bodies = _bodies(source, listed, facts)
    if not len(bodies):
        facts.pairs.close()
        raise IngestError(source.name, "no neurons: the input holds no rows")
    roi_names, rank = facts.roi_order()
    pairs = facts.pairs.finish(bodies, rank)
    try:
        return _prepared(source, rule, bodies, listed, conns, facts, pairs, roi_names, totals)
    except BaseException:
        pairs.close()
        raise


def _prepared(source: Source, rule: ChandelierRule, bodies: np.ndarray, listed: np.ndarray,
              conns: Any, facts: SynapseFacts, pairs: PairStore, roi_names: list[str],
              totals: Totals) -> Prepared:
    if conns is None:  # chemical connections are the synapses counted per (pre, post)
        totals = Totals(len(bodies), source.name)
        nb = np.int64(len(bodies))
        for bucket in pairs.buckets():
            totals.connections(bucket.keys // nb, bucket.keys % nb, bucket.counts)
        chemical, chemical_synapses = pairs.connections, pairs.synapses
        electrical = Pairs(*(np.zeros(0, dtype=np.int64) for _ in range(3)))
    else:
        chemical, chemical_synapses = conns.chemical, conns.chemical_synapses
        lo, hi, weight = conns.gap
        electrical = Pairs(bodies[lo], bodies[hi], weight)
        other = lo != hi  # a self-coupled cell's junctions count once
        totals.add("gapJunctions", np.concatenate([lo, hi[other]]),
                   np.concatenate([weight, weight[other]]))
    check_total(float(electrical.weight.astype(np.float64).sum()), "of gap junctions",
                source.name)
    summaries = totals.result()
    summaries.update(_chandeliers(bodies, facts, rule))
    meta = dict(source.meta)
    meta.update(chandelier_meta(rule, bool(summaries.pop("classified")[0]),
                                int(summaries["chandelier"].sum())))
    if source.cave_drops:
        meta["droppedSynapses"] = facts.dropped
    return Prepared(source=source, bodies=bodies, listed=listed, chemical_connections=chemical,
                    chemical_synapses=chemical_synapses, electrical=electrical, pairs=pairs,
                    roi_names=roi_names, synapses=facts.count, summaries=summaries, meta=meta)


def _chandeliers(bodies: np.ndarray, facts: SynapseFacts,
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
