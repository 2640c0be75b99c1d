"""A reconstruction run directory (see `reconstruct/RUN_DIR.md`): segments, synapses, run.json.

Segments become neurons (`predicted_class` as `cellClass` and `type`, the soma as
`somaLocation`); synapses keep their location (nm), size, confidence and postsynaptic
compartment. Every synapse must be on a listed segment. The dataset's Meta records where the
run's volumes are (`runDirectory`, and `emDirectory` when run.json's source is there, or when
the folder is the `truth/` of an EM directory; both absolute) and `voxelSizeNm`, so the API can
serve them to Neuroglancer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from connectome_query.ingest.errors import IngestError
from connectome_query.ingest.prepare import check_meta
from connectome_query.ingest.readers.canonical import (
    FileStream,
    NeuronColumns,
    SynapseColumns,
    present,
)
from connectome_query.ingest.readers.files import open_table
from connectome_query.ingest.tables import Source

SOMA = ("soma_x", "soma_y", "soma_z")


def is_run_dir(path: Path) -> bool:
    return (path / "segments.parquet").exists() and (path / "synapses.parquet").exists()


def _run_meta(path: Path) -> dict[str, Any]:
    run_json = path / "run.json"
    if not run_json.exists():
        return {}
    try:
        meta = json.loads(run_json.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise IngestError(run_json, f"not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise IngestError(run_json, "expected a JSON object")
    check_meta(meta, str(run_json))
    return meta


def volume_meta(path: Path, run: dict[str, Any]) -> dict[str, Any]:
    """Where the run's volumes lie, for the API's /volumes routes."""
    found: dict[str, Any] = {"runDirectory": str(path.resolve())}
    em = run.get("source")
    if isinstance(em, str) and (Path(em) / "volume.json").is_file():
        found["emDirectory"] = str(Path(em).resolve())
    elif (path.parent / "volume.json").is_file():  # an EM directory's truth/ folder
        found["emDirectory"] = str(path.parent.resolve())
        run = {**json.loads((path.parent / "volume.json").read_text()), **run}
    voxel = run.get("voxel_size_nm")
    if isinstance(voxel, list) and len(voxel) == 3:
        found["voxelSizeNm"] = [float(v) for v in voxel]
    return found


def run_dir_source(path: Path) -> Source:
    """A run directory written by `connectome reconstruct`, as a source."""
    meta = _run_meta(path)
    seg = open_table(path / "segments.parquet")
    seg.require("segment_id")
    cls = present(seg, "predicted_class")
    neurons = NeuronColumns(
        body_id="segment_id", min_id=1,
        text=(("cellClass", cls), ("type", cls)) if cls else (),
        size=present(seg, "size_voxels"),
        soma=SOMA if all(seg.has(c) for c in SOMA) else None,
        constants=(("status", "Reconstructed"),))
    syn = open_table(path / "synapses.parquet")
    syn.require("synapse_id", "pre_segment_id", "post_segment_id", "x", "y", "z")
    synapses = SynapseColumns(
        pre="pre_segment_id", post="post_segment_id", position=("x", "y", "z"),
        synapse_id="synapse_id", min_id=1, size=present(syn, "size_voxels"),
        confidence=present(syn, "confidence"), compartment=present(syn, "post_compartment"))
    meta["description"] = f"reconstruction run {path.name}"
    meta.update(volume_meta(path, meta))
    return Source(
        name=str(path),
        neurons=FileStream(seg, neurons, {"bodyId": "segment_id"}),
        synapses=FileStream(syn, synapses, {"synapseId": "synapse_id",
                                            "bodyIdPre": "pre_segment_id",
                                            "bodyIdPost": "post_segment_id"}),
        meta=meta, synapse_bodies="listed")
