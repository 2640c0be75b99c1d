"""The writing pass: a `Prepared` dataset as batches of rows for the writers, the tables read a
second time part by part and joined with what the checking pass learnt (per-neuron totals,
connection weights aggregated from synapses). Every batch is an Arrow table of at most `size`
rows, so memory stays bounded by a batch whatever the dataset's size.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from connectome_query.ingest.aggregate import PairCounts
from connectome_query.ingest.prepare import Prepared
from connectome_query.ingest.tables import CONNECTION_SCHEMA, NEURON_SCHEMA

SUMMARY_FIELDS = (("pre", pa.int64()), ("post", pa.int64()), ("synapseCount", pa.int64()),
                  ("upstream", pa.int64()), ("downstream", pa.int64()),
                  ("gapJunctions", pa.int64()), ("chandelier", pa.bool_()),
                  ("aisOutputFraction", pa.float64()), ("aisOutputSynapses", pa.int64()))
"""What the checking pass adds to each neuron."""

NEURON_BATCH_SCHEMA = pa.schema(list(NEURON_SCHEMA) + [pa.field(n, t) for n, t in SUMMARY_FIELDS])


def rebatch(tables: Iterable[pa.Table], size: int) -> Iterator[pa.Table]:
    """The rows of `tables`, in order, as tables of exactly `size` rows (the last may be
    shorter)."""
    held: list[pa.Table] = []
    rows = 0
    for table in tables:
        held.append(table)
        rows += table.num_rows
        if rows < size:
            continue
        joined = pa.concat_tables(held)
        start = 0
        while rows - start >= size:
            yield joined.slice(start, size)
            start += size
        held, rows = [joined.slice(start)], rows - start
    if rows:
        yield pa.concat_tables(held)


def _with_summaries(prep: Prepared, table: pa.Table) -> pa.Table:
    at = prep.body_index(table.column("bodyId").to_numpy())
    for name, kind in SUMMARY_FIELDS:
        values = prep.summaries[name][at]
        table = table.append_column(name, pa.array(values, kind, from_pandas=True))
    return table


def neuron_batches(prep: Prepared, size: int) -> Iterator[pa.Table]:
    """Every neuron with its totals: the neuron table's rows, then bodies known only from
    synapses (id and totals alone)."""
    def tables() -> Iterator[pa.Table]:
        if prep.source.neurons is not None:
            for part in prep.source.neurons.parts():
                yield _with_summaries(prep, part.table)
        extra = np.setdiff1d(prep.bodies, prep.listed, assume_unique=True)
        for start in range(0, len(extra), size):
            ids = extra[start:start + size]
            bare = {f.name: pa.nulls(len(ids), f.type) for f in NEURON_SCHEMA}
            bare["bodyId"] = pa.array(ids, pa.int64())
            yield _with_summaries(prep, pa.table(bare, schema=NEURON_SCHEMA))
    return rebatch(tables(), size)


def _pairs_table(pre: np.ndarray, post: np.ndarray, weight: np.ndarray, kind: str) -> pa.Table:
    n = len(pre)
    return pa.table({
        "bodyIdPre": pre, "bodyIdPost": post, "weight": weight,
        "kind": pa.array([kind] * n, pa.string()),
        "roiInfo": pa.nulls(n, pa.string()), "rois": pa.nulls(n, pa.list_(pa.string())),
        "roiWeights": pa.nulls(n, pa.list_(pa.int64())),
        "publishedWeight": pa.nulls(n, pa.float64()),
    }, schema=CONNECTION_SCHEMA)


def _with_roi_info(prep: Prepared, table: pa.Table, bucket: PairCounts, start: int,
                   stop: int) -> pa.Table:
    """roiInfo (`{"ROI": {"pre": n, "post": n}}`, ROIs by name), rois and roiWeights of the
    bucket's connections `start:stop`, from its synapses per ROI."""
    keys = bucket.keys[start:stop]
    lo = np.searchsorted(bucket.roi_keys, keys[0])
    hi = np.searchsorted(bucket.roi_keys, keys[-1], "right")
    where = np.searchsorted(keys, bucket.roi_keys[lo:hi])
    names = prep.roi_names
    found: dict[int, tuple[list[str], list[int]]] = {}
    for i, roi, n in zip(where.tolist(), bucket.rois[lo:hi].tolist(),
                         bucket.roi_counts[lo:hi].tolist(), strict=True):
        names_of, counts_of = found.setdefault(i, ([], []))
        names_of.append(names[roi])
        counts_of.append(n)
    rois = [found[i][0] if i in found else None for i in range(len(keys))]
    weights = [found[i][1] if i in found else None for i in range(len(keys))]
    info = [None if i not in found else json.dumps(
        {name: {"pre": w, "post": w} for name, w in zip(*found[i], strict=True)})
        for i in range(len(keys))]
    table = table.set_column(4, "roiInfo", pa.array(info, pa.string()))
    table = table.set_column(5, "rois", pa.array(rois, pa.list_(pa.string())))
    return table.set_column(6, "roiWeights", pa.array(weights, pa.list_(pa.int64())))


def _synapse_connections(prep: Prepared, size: int) -> Iterator[pa.Table]:
    """Chemical connections made from the synapses, bucket by bucket, with their roiInfo."""
    nb = np.int64(len(prep.bodies))
    for bucket in prep.pairs.buckets():
        for start in range(0, len(bucket.keys), size):
            stop = min(start + size, len(bucket.keys))
            keys = bucket.keys[start:stop]
            table = _pairs_table(prep.bodies[keys // nb], prep.bodies[keys % nb],
                                 bucket.counts[start:stop], "chemical")
            if len(bucket.roi_keys):
                table = _with_roi_info(prep, table, bucket, start, stop)
            yield table


def connection_batches(prep: Prepared, kind: str, size: int) -> Iterator[pa.Table]:
    """Chemical or electrical connections (`CONNECTION_SCHEMA`)."""
    if kind == "electrical":
        gap = prep.electrical
        return (_pairs_table(gap.pre[i:i + size], gap.post[i:i + size], gap.weight[i:i + size],
                             kind) for i in range(0, len(gap), size))
    if prep.chemical_from_synapses:
        return rebatch(_synapse_connections(prep, size), size)
    assert prep.source.connections is not None
    return rebatch((part.table.filter(pc.equal(part.table.column("kind"), "chemical"))
                    for part in prep.source.connections.parts()), size)


def synapse_set_batches(prep: Prepared, size: int) -> Iterator[pa.Table]:
    """One (pre, post) per synapse set, with its key (`synapse_set_key`)."""
    nb = np.int64(len(prep.bodies))

    def tables() -> Iterator[pa.Table]:
        for bucket in prep.pairs.buckets():
            keys = bucket.keys
            yield pa.table({"bodyIdPre": prep.bodies[keys // nb],
                            "bodyIdPost": prep.bodies[keys % nb], "key": keys})
    return rebatch(tables(), size)


def synapse_set_key(prep: Prepared, pre: np.ndarray, post: np.ndarray) -> np.ndarray:
    """A number per (pre, post) body pair, unique in the dataset: the synapse set's key."""
    nb = np.int64(len(prep.bodies))
    return prep.body_index(pre).astype(np.int64) * nb + prep.body_index(post)


def synapse_batches(prep: Prepared, size: int) -> Iterator[pa.Table]:
    """Every synapse (`SYNAPSE_SCHEMA`)."""
    if prep.source.synapses is None:
        return iter(())
    return rebatch((part.table for part in prep.source.synapses.parts()), size)
