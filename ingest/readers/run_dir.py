"""A reconstruction run directory (see `reconstruct/RUN_DIR.md`): segments, synapses, run.json.

Segments become neurons (`predicted_class` as `cellClass`, the soma as `somaLocation`);
synapses keep their location (nm), size, confidence and postsynaptic compartment.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from connectome_query.ingest.errors import IngestError
from connectome_query.ingest.readers._columns import read_table
from connectome_query.ingest.readers.synapse_table import synapses_to_tables
from connectome_query.ingest.tables import ConnectomeTables
from connectome_query.schema.vocabulary import COMPARTMENT_NAMES


def is_run_dir(path: Path) -> bool:
    return (path / "segments.parquet").exists() and (path / "synapses.parquet").exists()


def read_run_dir(path: Path) -> ConnectomeTables:
    """Read a run directory written by `connectome reconstruct`."""
    run_json = path / "run.json"
    meta: dict[str, object] = {}
    if run_json.exists():
        try:
            meta = json.loads(run_json.read_text())
        except ValueError as exc:
            raise IngestError(run_json, f"not valid JSON ({exc})") from None
    seg = read_table(path / "segments.parquet")
    seg.require("segment_id")
    neurons = pd.DataFrame({"bodyId": seg.integer("segment_id", minimum=1)})
    frame = seg.frame
    neurons["size"] = seg.number("size_voxels") if "size_voxels" in frame.columns else None
    for axis in "xyz":
        col = f"soma_{axis}"
        neurons[f"soma{axis.upper()}"] = seg.number(col) if col in frame.columns else None
    if "predicted_class" in frame.columns:
        classes = seg.text("predicted_class", required=False)
        neurons["cellClass"] = classes.to_numpy()
        neurons["type"] = classes.to_numpy()
    neurons["status"] = "Reconstructed"
    dup = neurons["bodyId"].duplicated()
    if dup.any():
        pos = int(dup.to_numpy().nonzero()[0][0])
        raise IngestError(seg.path, "duplicate segment id", row=seg.row_of(pos),
                          column="segment_id")
    syn_t = read_table(path / "synapses.parquet")
    syn_t.require("synapse_id", "pre_segment_id", "post_segment_id", "x", "y", "z")
    syn = pd.DataFrame(
        {
            "synapseId": syn_t.integer("synapse_id", minimum=0),
            "bodyIdPre": syn_t.integer("pre_segment_id", minimum=1),
            "bodyIdPost": syn_t.integer("post_segment_id", minimum=1),
            "x": syn_t.number("x", required=True),
            "y": syn_t.number("y", required=True),
            "z": syn_t.number("z", required=True),
        }
    )
    sframe = syn_t.frame
    syn["size"] = syn_t.number("size_voxels") if "size_voxels" in sframe.columns else None
    syn["confidence"] = syn_t.number("confidence") if "confidence" in sframe.columns else None
    if "post_compartment" in sframe.columns:
        comp = syn_t.text("post_compartment", required=False).fillna("unknown")
        bad = ~comp.isin(COMPARTMENT_NAMES)
        if bad.any():
            pos = int(bad.to_numpy().nonzero()[0][0])
            raise IngestError(syn_t.path, f"unknown compartment {comp.iloc[pos]!r}",
                              row=syn_t.row_of(pos), column="post_compartment")
        syn["postCompartment"] = comp.to_numpy()
    else:
        syn["postCompartment"] = "unknown"
    syn["roi"] = None
    known = set(neurons["bodyId"].tolist())
    for col, name in (("bodyIdPre", "pre_segment_id"), ("bodyIdPost", "post_segment_id")):
        missing = ~syn[col].isin(known)
        if missing.any():
            pos = int(missing.to_numpy().nonzero()[0][0])
            raise IngestError(syn_t.path, f"segment {int(syn[col].iloc[pos])} is not in "
                              "segments.parquet", row=syn_t.row_of(pos), column=name)
    meta["description"] = f"reconstruction run {path.name}"
    return synapses_to_tables(syn, source=str(path), neurons=neurons, meta=meta)
