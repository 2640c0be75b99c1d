"""Synapse-level tables shaped like CAVE / h01 / MICrONS exports, in CSV or Parquet.

Columns: `pre_pt_root_id`, `post_pt_root_id` and a location, as `ctr_pt_position` ("[x, y, z]"
text or a list column) or as `ctr_pt_position_x`, `_y`, `_z`; optional `id`, `size`,
`confidence`, `post_compartment` and `neuropil` (or `roi`). Positions are voxels as CAVE stores
them; `voxel_size` (nm per voxel, x y z) converts them to nm. Autapses (pre == post) and rows on
root id 0 (unsegmented) are dropped and counted, as CAVE marks them invalid. `ConnectsTo`
weights are synapse counts per (pre, post) pair. Root ids are read as exact 64-bit integers
(FlyWire's ~7.2e17, MICrONS' ~8.6e17); a root id written as a decimal is refused.
"""

from __future__ import annotations

import math
from pathlib import Path

from connectome_query.ingest.errors import ParameterError
from connectome_query.ingest.memory import to_tables
from connectome_query.ingest.readers.canonical import FileStream, SynapseColumns, present
from connectome_query.ingest.readers.files import open_table
from connectome_query.ingest.readers.neuprint import neuron_stream
from connectome_query.ingest.tables import ConnectomeTables, Source

VoxelSize = tuple[float, float, float]
STEM = "ctr_pt_position"


def check_voxel_size(voxel_size: tuple[float, ...]) -> VoxelSize:
    """Three finite numbers above zero (nm per voxel); ParameterError otherwise."""
    if len(voxel_size) != 3 or not all(
            isinstance(v, int | float) and math.isfinite(v) and v > 0 for v in voxel_size):
        raise ParameterError("--voxel-size", "expected three finite numbers above zero (nm per "
                             f"voxel, x,y,z, e.g. 4,4,40), got {voxel_size!r}")
    return (float(voxel_size[0]), float(voxel_size[1]), float(voxel_size[2]))


def parse_voxel_size(text: str) -> VoxelSize:
    """`4,4,40` as (4.0, 4.0, 40.0); ParameterError naming the option when it is not three
    finite numbers above zero."""
    try:
        parts = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise ParameterError("--voxel-size", "expected three finite numbers above zero (nm per "
                             f"voxel, x,y,z, e.g. 4,4,40), got {text!r}") from None
    return check_voxel_size(parts)


def synapse_stream(path: Path, *, voxel_size: VoxelSize = (1.0, 1.0, 1.0),
                   encoding: str = "utf-8") -> FileStream:
    """A CAVE-style synapse table, checked as it is read."""
    file = open_table(path, encoding=encoding)
    file.require("pre_pt_root_id", "post_pt_root_id")
    split = (f"{STEM}_x", f"{STEM}_y", f"{STEM}_z")
    if not all(file.has(c) for c in split):
        file.require(STEM)
    columns = SynapseColumns(
        pre="pre_pt_root_id", post="post_pt_root_id",
        position=split if all(file.has(c) for c in split) else STEM,
        synapse_id=present(file, "id"), voxel_size=check_voxel_size(voxel_size),
        size=present(file, "size"), confidence=present(file, "confidence"),
        compartment=present(file, "post_compartment"), roi=present(file, "neuropil", "roi"),
        drop_invalid=True)
    return FileStream(file, columns, {"synapseId": "id", "bodyIdPre": "pre_pt_root_id",
                                      "bodyIdPost": "post_pt_root_id"})


def synapse_table_source(path: Path, *, voxel_size: VoxelSize = (1.0, 1.0, 1.0),
                         neurons_path: Path | None = None, encoding: str = "utf-8") -> Source:
    """One synapse table (and optionally a neuPrint-style neurons file for types) as a source:
    bodies the neurons file lacks become neurons without properties."""
    return Source(
        name=str(path),
        neurons=neuron_stream(neurons_path, encoding=encoding) if neurons_path else None,
        synapses=synapse_stream(path, voxel_size=voxel_size, encoding=encoding),
        meta={"voxelSizeNm": list(check_voxel_size(voxel_size))},
        synapse_bodies="add", cave_drops=True,
    )


def read_synapse_table(path: Path, *, voxel_size: VoxelSize = (1.0, 1.0, 1.0),
                       neurons_path: Path | None = None,
                       encoding: str = "utf-8") -> ConnectomeTables:
    """The whole table in memory (for small tables and tests; `connectome ingest` streams)."""
    return to_tables(synapse_table_source(path, voxel_size=voxel_size,
                                          neurons_path=neurons_path, encoding=encoding))
