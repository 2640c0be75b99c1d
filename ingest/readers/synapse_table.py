"""Synapse-level tables shaped like CAVE / h01 / MICrONS exports, in CSV or Parquet.

Columns: `pre_pt_root_id`, `post_pt_root_id` and a location, as `ctr_pt_position` ("[x, y, z]"
text or a list column) or as `ctr_pt_position_x`, `_y`, `_z`; optional `id`, `size`,
`confidence`, `post_compartment` and `neuropil` (or `roi`). Positions are voxels as CAVE stores
them; `voxel_size` (nm per voxel, x y z) converts them to nm. Autapses (pre == post) and rows on
root id 0 (unsegmented) are dropped and counted, as CAVE marks them invalid. `ConnectsTo`
weights are synapse counts per (pre, post) pair.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from connectome_query.ingest.errors import IngestError
from connectome_query.ingest.readers._columns import Table, read_table
from connectome_query.ingest.readers.neuprint import read_neurons
from connectome_query.ingest.tables import ConnectomeTables
from connectome_query.schema.vocabulary import COMPARTMENT_NAMES

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _positions(table: Table, stem: str) -> np.ndarray:
    frame = table.frame
    split = [f"{stem}_{axis}" for axis in "xyz"]
    if set(split) <= set(frame.columns):
        return np.stack([table.number(c, required=True).to_numpy() for c in split], axis=1)
    table.require(stem)
    out = np.empty((len(frame), 3), dtype=np.float64)
    for i, value in enumerate(frame[stem].to_numpy()):
        if isinstance(value, str):
            numbers = _NUMBER.findall(value)
            parsed = [float(v) for v in numbers] if value.strip().startswith("[") else []
        elif value is not None and hasattr(value, "__len__"):
            parsed = [float(v) for v in value]
        else:
            parsed = []
        if len(parsed) != 3 or not np.all(np.isfinite(parsed)):
            raise IngestError(table.path, f"expected a position [x, y, z], found {value!r}",
                              row=table.row_of(i), column=stem)
        out[i] = parsed
    return out


def read_synapse_table(
    path: Path,
    *,
    voxel_size: tuple[float, float, float] = (1.0, 1.0, 1.0),
    neurons_path: Path | None = None,
    encoding: str = "utf-8",
) -> ConnectomeTables:
    """Read one synapse table (and optionally a neuPrint-style neurons file for types)."""
    table = read_table(path, encoding=encoding)
    table.require("pre_pt_root_id", "post_pt_root_id")
    frame = table.frame
    pre = table.integer("pre_pt_root_id", minimum=0)
    post = table.integer("post_pt_root_id", minimum=0)
    xyz = _positions(table, "ctr_pt_position") * np.asarray(voxel_size, dtype=np.float64)
    n = len(frame)
    ids = (table.integer("id", minimum=0) if "id" in frame.columns
           else pd.Series(np.arange(1, n + 1)))
    syn = pd.DataFrame(
        {
            "synapseId": ids.to_numpy(),
            "bodyIdPre": pre.to_numpy(),
            "bodyIdPost": post.to_numpy(),
            "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
            "size": table.number("size").to_numpy() if "size" in frame.columns else np.nan,
            "confidence": (table.number("confidence").to_numpy()
                           if "confidence" in frame.columns else np.nan),
        }
    )
    if "post_compartment" in frame.columns:
        comp = table.text("post_compartment", required=False).map(
            lambda v: v.lower() if isinstance(v, str) else "unknown")
        bad = ~comp.isin(COMPARTMENT_NAMES)
        if bad.any():
            pos = int(bad.to_numpy().nonzero()[0][0])
            raise IngestError(path, f"unknown compartment {comp.iloc[pos]!r} (expected one of "
                              f"{list(COMPARTMENT_NAMES)})", row=table.row_of(pos),
                              column="post_compartment")
        syn["postCompartment"] = comp.to_numpy()
    else:
        syn["postCompartment"] = "unknown"
    roi_col = next((c for c in ("neuropil", "roi") if c in frame.columns), None)
    syn["roi"] = table.text(roi_col, required=False).to_numpy() if roi_col else None
    conf = syn["confidence"]
    if ((conf < 0) | (conf > 1)).any():
        pos = int(((conf < 0) | (conf > 1)).to_numpy().nonzero()[0][0])
        raise IngestError(path, f"confidence {conf.iloc[pos]} is outside [0, 1]",
                          row=table.row_of(pos), column="confidence")
    dup = syn["synapseId"].duplicated()
    if dup.any():
        pos = int(dup.to_numpy().nonzero()[0][0])
        raise IngestError(path, f"duplicate synapse id {int(syn['synapseId'].iloc[pos])}",
                          row=table.row_of(pos), column="id")
    valid = (syn["bodyIdPre"] != syn["bodyIdPost"]) & (syn["bodyIdPre"] != 0) & (
        syn["bodyIdPost"] != 0)
    dropped = int((~valid).sum())
    syn = syn[valid].reset_index(drop=True)
    if syn.empty:
        raise IngestError(path, "no valid synapses (every row is an autapse or on root id 0)")
    return synapses_to_tables(syn, source=str(path), neurons_path=neurons_path,
                              encoding=encoding, meta={"droppedSynapses": dropped,
                                                       "voxelSizeNm": list(voxel_size)})


def synapses_to_tables(
    syn: pd.DataFrame,
    *,
    source: str,
    neurons: pd.DataFrame | None = None,
    neurons_path: Path | None = None,
    encoding: str = "utf-8",
    meta: dict[str, object] | None = None,
) -> ConnectomeTables:
    """Aggregate a synapse table into connection weights, with neurons for every body seen."""
    weights = syn.groupby(["bodyIdPre", "bodyIdPost"], as_index=False).size()
    weights = weights.rename(columns={"size": "weight"})
    weights["kind"] = "chemical"
    if syn["roi"].notna().any():
        per_roi = syn.dropna(subset=["roi"]).groupby(["bodyIdPre", "bodyIdPost", "roi"]).size()
        per_pair: dict[tuple[int, int], dict[str, dict[str, int]]] = {}
        for pre, post, roi, count in per_roi.reset_index(name="n").itertuples(index=False):
            per_pair.setdefault((int(pre), int(post)), {})[str(roi)] = {
                "pre": int(count), "post": int(count)}
        info = {pair: json.dumps(rois) for pair, rois in per_pair.items()}
        weights["roiInfo"] = [info.get((int(a), int(b))) for a, b in
                              zip(weights["bodyIdPre"], weights["bodyIdPost"], strict=True)]
    if neurons is None and neurons_path is not None:
        neurons = read_neurons(neurons_path, encoding=encoding)
    bodies = np.union1d(syn["bodyIdPre"].unique(), syn["bodyIdPost"].unique())
    if neurons is None:
        neurons = pd.DataFrame({"bodyId": bodies})
    else:
        extra = np.setdiff1d(bodies, neurons["bodyId"].to_numpy())
        if len(extra):
            neurons = pd.concat([neurons, pd.DataFrame({"bodyId": extra})], ignore_index=True)
    return ConnectomeTables(source=source, neurons=neurons, connections=weights, synapses=syn,
                            meta=dict(meta or {}))
