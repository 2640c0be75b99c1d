"""The truth's skeleton nodes sorted by block, so that a scoring task reads only its own.

`split` runs one engine task per row group of `truth/skeletons.parquet`, reading it in batches of
`BATCH` rows; each batch's nodes go to the folder of the run's block holding each node's voxel, one
file per batch and block (`<folder>/<block>/<row group>-<batch>.npz`: row in the table, node id,
parent id, cell, voxel, place in the tissue). `load` reads one block's files. No process holds the
table: a split task holds a batch, a scoring task the nodes of its block. The folder is made
once per run (the run's blocks decide it), from the table any EM directory holds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from connectome_query.reconstruct import io
from connectome_query.reconstruct.engine.context import Run
from connectome_query.reconstruct.engine.manifest import load_record, save_record
from connectome_query.reconstruct.engine.runner import Engine, Record
from connectome_query.reconstruct.location import Where
from connectome_query.reconstruct.scoring import TISSUE_XYZ, node_voxels

BATCH = 1 << 16
"""Rows of the skeleton table a split task holds at a time."""
COLUMNS = ("node_id", "parent_id", "segment_id", "x", "y", "z")
FIELDS = ("row", "node", "parent", "cell", "vox", "at")
"""A block's nodes: row in the table, node id, parent id, cell (skeleton) id, (z, y, x) voxel,
(x, y, z) nm in the tissue (`scoring.TISSUE_XYZ` where the table has them), where edge lengths
are measured."""


def _columns(table: Where) -> list[str]:
    names = io.check_columns(table, "ground truth", io.SKELETON_COLUMNS)
    return [*COLUMNS, *(TISSUE_XYZ if set(TISSUE_XYZ) <= names else ())]


def _batch_nodes(batch: dict[str, np.ndarray], first: int, run: Run) -> Record:
    xyz = np.stack([np.asarray(batch[c], float) for c in ("x", "y", "z")], axis=1)
    at = np.stack([np.asarray(batch[c], float) for c in TISSUE_XYZ], axis=1) \
        if TISSUE_XYZ[0] in batch else xyz
    return {"row": np.arange(first, first + len(xyz), dtype=np.int64),
            "node": np.asarray(batch["node_id"], np.int64),
            "parent": np.asarray(batch["parent_id"], np.int64),
            "cell": np.asarray(batch["segment_id"], np.int64),
            "vox": node_voxels(xyz, run.voxel_size_zyx, run.shape), "at": at}


def _split_task(item: int, run: Run, table: str, columns: list[str], folder: str,
                batch_rows: int) -> Record:
    """Row group `item` of the table into the blocks' folders, a batch at a time."""
    f = pq.ParquetFile(io.parquet_source(table, "ground truth"))
    first = sum(f.metadata.row_group(k).num_rows for k in range(item))
    touched: set[int] = set()
    batches = f.iter_batches(batch_size=batch_rows, row_groups=[item], columns=columns)
    for b, batch in enumerate(batches):
        nodes = _batch_nodes({c: batch.column(c).to_numpy(zero_copy_only=False)
                              for c in batch.schema.names}, first, run)
        first += batch.num_rows
        number = run.grid.of_points(nodes["vox"])
        order = np.argsort(number, kind="stable")
        starts = np.searchsorted(number[order], np.arange(len(run.grid) + 1))
        for block in np.unique(number).tolist():
            mine = order[starts[block]:starts[block + 1]]
            save_record(Path(folder) / str(block) / f"{item}-{b}.npz",
                        {k: v[mine] for k, v in nodes.items()})
            touched.add(int(block))
    return {"blocks": np.array(sorted(touched), np.int64)}


def split(engine: Engine, run: Run, table: Where, folder: Path, batch: int = BATCH) -> None:
    """Write `folder`: the table's nodes by block of the run's grid, `batch` rows at a time
    (`table` at any location; one in object storage is fetched whole by each task)."""
    columns = _columns(table)  # checked and chosen once, not by every task
    groups = pq.ParquetFile(io.parquet_source(table, "ground truth")).metadata.num_row_groups
    engine.run("truth nodes", range(groups), _split_task, run, str(table), columns,
               str(folder), batch)


def load(folder: Path, block: int) -> Record:
    """The nodes of one block (`FIELDS`), in the table's row order."""
    parts = [load_record(p) for p in sorted((Path(folder) / str(block)).glob("*.npz"))]
    if not parts:
        return {"row": np.zeros(0, np.int64), "node": np.zeros(0, np.int64),
                "parent": np.zeros(0, np.int64), "cell": np.zeros(0, np.int64),
                "vox": np.zeros((0, 3), np.int64), "at": np.zeros((0, 3))}
    out = {k: np.concatenate([p[k] for p in parts]) for k in FIELDS}
    order = np.argsort(out["row"], kind="stable")
    return {k: v[order] for k, v in out.items()}
