"""Neuromodulator edges: extrasynaptic signalling by monoamines and neuropeptides, directed from
a releasing cell to a cell that expresses a receptor, stored as their own relationship types
(`schema.model.MONOAMINE`, `NEUROPEPTIDE`) beside chemical and electrical synapses.

One relationship per (pre, post, kind); `weight` is the number of transmitter-receptor
pathways from pre to post, and `transmitters` / `receptors` list them (parallel lists) where
the source names them. They are few (C. elegans scale) and held in memory: checked after the
neurons (every end must be a neuron of the dataset), written after the synapses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from connectome_query.ingest.errors import IngestError
from connectome_query.ingest.limits import INT64_MAX
from connectome_query.schema.model import MONOAMINE, NEUROPEPTIDE

RELATIONSHIP = {"monoamine": MONOAMINE, "neuropeptide": NEUROPEPTIDE}
COLUMNS = ("bodyIdPre", "bodyIdPost", "kind", "weight", "transmitters", "receptors")


def write_query(kind: str) -> str:
    return f"""
UNWIND $rows AS r
MATCH (a:Neuron {{dataset: $dataset, bodyId: r.pre}})
MATCH (b:Neuron {{dataset: $dataset, bodyId: r.post}})
CREATE (a)-[m:{RELATIONSHIP[kind]} {{weight: r.weight, dataset: $dataset}}]->(b)
SET m.transmitters = r.transmitters, m.receptors = r.receptors
"""


def check_modulatory(frame: pd.DataFrame | None, bodies: np.ndarray,
                     where: str) -> pd.DataFrame | None:
    """`frame` (columns `COLUMNS`) checked against the dataset's sorted `bodies`: known kinds,
    ends that are neurons, weights from 1 to 2^63-1, one row per (pre, post, kind). Rows are
    numbered from 1 in messages (`where` names the table)."""
    if frame is None or frame.empty:
        return None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise IngestError(where, "missing required column", column=missing[0])
    kinds = frame["kind"].to_numpy()
    checks: list[tuple[np.ndarray, str, str]] = [
        (~np.isin(kinds, list(RELATIONSHIP)), "kind",
         f"not one of {', '.join(RELATIONSHIP)}")]
    weight = frame["weight"].to_numpy()
    checks.append((~((weight >= 1) & (weight <= INT64_MAX)), "weight",
                   "weight is not a whole number from 1 to 2^63-1"))
    for column in ("bodyIdPre", "bodyIdPost"):
        ids = frame[column].to_numpy(dtype=np.int64)
        pos = np.searchsorted(bodies, ids).clip(0, max(len(bodies) - 1, 0))
        unknown = (bodies[pos] != ids) if len(bodies) else np.ones(len(ids), bool)
        checks.append((unknown, column, "not a neuron of the dataset"))
    checks.append((frame.duplicated(["bodyIdPre", "bodyIdPost", "kind"]).to_numpy(),
                   "bodyIdPre", "the same (pre, post, kind) is listed twice"))
    for bad, column, message in checks:
        hits = np.flatnonzero(bad)
        if len(hits):
            i = int(hits[0])
            raise IngestError(where, f"{message} ({frame[column].iloc[i]!r})", row=i + 1,
                              column=column)
    return frame.reset_index(drop=True)


Step = tuple[str, str, int, Iterator[pa.Table], Callable[[pa.Table], list[dict[str, Any]]]]


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    return [{"pre": r["bodyIdPre"], "post": r["bodyIdPost"], "weight": r["weight"],
             "transmitters": r["transmitters"], "receptors": r["receptors"]}
            for r in table.to_pylist()]


def modulatory_steps(frame: pd.DataFrame | None, batch_size: int) -> list[Step]:
    """The loader's write steps for checked neuromodulator edges (none when there are none)."""
    if frame is None:
        return []
    steps: list[Step] = []
    for kind in RELATIONSHIP:
        part = frame[frame["kind"] == kind]
        if part.empty:
            continue
        table = pa.table({
            "bodyIdPre": pa.array(part["bodyIdPre"].to_numpy(dtype=np.int64)),
            "bodyIdPost": pa.array(part["bodyIdPost"].to_numpy(dtype=np.int64)),
            "weight": pa.array(part["weight"].to_numpy(dtype=np.int64)),
            "transmitters": pa.array(list(part["transmitters"]), pa.list_(pa.string())),
            "receptors": pa.array(list(part["receptors"]), pa.list_(pa.string()))})
        batches = iter([table.slice(i, batch_size)
                        for i in range(0, table.num_rows, batch_size)])
        steps.append((f"{kind} edges", write_query(kind), table.num_rows, batches, _rows))
    return steps


def modulatory_meta(frame: pd.DataFrame | None) -> dict[str, int]:
    """Counts for the dataset's Meta node (`monoamineConnections`, ...)."""
    if frame is None:
        return {}
    return {f"{kind}Connections": int((frame["kind"] == kind).sum()) for kind in RELATIONSHIP}
