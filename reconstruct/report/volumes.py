"""What the report reads of the volumes, a block at a time: never a whole volume in memory.

`centre_sections` reads the three orthogonal sections through the centre (every k-th voxel
along an axis longer than `MAX_SIDE`, so a picture's pixels stay bounded). `scan` walks the
segmentation and the truth block by block, keeping only the segment under each skeleton node
and the (cell, segment) piece table (`errors.piece_table`): what ERL per cell and the split /
merge tables need. Memory: a block of each volume plus tables of nodes and pieces.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from connectome_query.reconstruct import io
from connectome_query.reconstruct.engine.grid import Grid, Triple
from connectome_query.reconstruct.location import Where
from connectome_query.reconstruct.report import errors

BLOCK: Triple = (32, 128, 128)
"""Voxels `scan` reads at a time from each volume (a multiple of the run's chunks)."""
ADD_EVERY = 64
"""Blocks' piece tables kept before they are added into one."""
MAX_SIDE = 1024
"""Longest side (pixels) of a section drawn in the report."""
PLANES = {"xy": 0, "xz": 1, "yz": 2}
"""Plane name -> the (z, y, x) axis held fixed."""


def steps(shape: Triple) -> Triple:
    """Per axis, every how many voxels a section keeps."""
    return tuple(max(1, -(-s // MAX_SIDE)) for s in shape)  # type: ignore[return-value]


def centre_sections(store: Any, path: Where, what: str) -> dict[str, np.ndarray]:
    """Plane name -> the section of a (z, y, x) array through its centre, subsampled by
    `steps`."""
    shape: Triple = tuple(int(s) for s in store.shape)  # type: ignore[assignment]
    step = steps(shape)
    out = {}
    for plane, fixed in PLANES.items():
        index = tuple(shape[a] // 2 if a == fixed else slice(None, None, step[a])
                      for a in range(3))
        out[plane] = io.read_block(store, index, path, what)
    return out


def scan(seg: Any, seg_path: Where, gt: Any, gt_path: Where, nodes_zyx: np.ndarray,
         block: Triple = BLOCK) -> tuple[np.ndarray, pd.DataFrame]:
    """(segment under each node (n, 3 voxel indices), the piece table of truth and
    segmentation), reading `block` voxels of each volume at a time."""
    shape: Triple = tuple(int(s) for s in seg.shape)  # type: ignore[assignment]
    grid = Grid(shape, block)
    nodes_zyx = np.asarray(nodes_zyx, np.int64).reshape(-1, 3)
    labels = np.zeros(len(nodes_zyx), np.int64)
    block_of = grid.of_points(nodes_zyx)
    order = np.argsort(block_of, kind="stable")
    starts = np.searchsorted(block_of[order], np.arange(len(grid) + 1))
    tables = []
    for item, box in grid.boxes():
        s = io.read_block(seg, box.slices(), seg_path, "segmentation")
        mine = order[starts[item]:starts[item + 1]]
        at = tuple((nodes_zyx[mine] - np.array(box.lo)).T)
        labels[mine] = s[at].astype(np.int64)
        g = io.read_block(gt, box.slices(), gt_path, "ground truth")
        tables.append(errors.piece_table(g, s, box.lo))
        if len(tables) >= ADD_EVERY:  # keep the tables as small as the pieces so far
            tables = [errors.add_piece_tables(tables)]
    return labels, errors.add_piece_tables(tables)
