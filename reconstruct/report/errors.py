"""Where a segmentation goes wrong against the truth: ERL per true cell and the largest split
and merge errors, each with a location (nm, x y z) to look at.

Both come from small tables, so a report never holds a volume: the segment under each skeleton
node (`erl_per_cell_of`) and a table of (cell, segment) pieces with their voxel counts and
coordinate sums (`piece_table`, one per block, added with `add_piece_tables`). `erl_per_cell`
and `split_merge_errors` do the same on volumes in memory."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from connectome_query.reconstruct import metrics
from connectome_query.reconstruct.scoring import skeleton_arrays

PIECE_COLUMNS = ["cell", "segment", "voxels", "sum_z", "sum_y", "sum_x"]
"""A piece table: true cell, segment, voxels of the cell in the segment and the sums of their
voxel coordinates (for the piece's centroid), one row per pair, sorted by (cell, segment)."""


def erl_per_cell(truth: dict[str, Any], seg: np.ndarray,
                 vs_zyx: tuple[float, float, float]) -> pd.DataFrame:
    """`erl_per_cell_of` for a segmentation in memory."""
    sids, edges, lengths, vox = skeleton_arrays(truth["skeletons"], vs_zyx, seg.shape)
    return erl_per_cell_of(sids, edges, lengths,
                           seg[vox[:, 0], vox[:, 1], vox[:, 2]].astype(np.int64))


def erl_per_cell_of(sids: np.ndarray, edges: np.ndarray, lengths: np.ndarray,
                    labels: np.ndarray) -> pd.DataFrame:
    """Per true cell: cable (nm) and its expected run length given the segment at each
    skeleton node (`labels`; `scoring.skeleton_arrays` gives the rest): `metrics.erl_cells`,
    longest cable first. The cable-weighted mean of `erl_nm` is `metrics.erl` of the volume."""
    cells = metrics.erl_cells_of_edges(sids, edges, lengths, np.asarray(labels, np.int64))
    return (cells.drop(columns="squares_nm2").sort_values("cable_nm", ascending=False)
            .reset_index(drop=True))


def piece_table(gt: np.ndarray, seg: np.ndarray,
                origin: tuple[int, int, int] = (0, 0, 0)) -> pd.DataFrame:
    """The piece table (`PIECE_COLUMNS`) of a volume, or of a block of one whose first voxel
    is `origin` (coordinates in the volume); voxels outside every true cell left out."""
    idx = np.flatnonzero(gt.reshape(-1) != 0)
    zyx = np.unravel_index(idx, gt.shape)
    df = pd.DataFrame({"cell": gt.reshape(-1)[idx].astype(np.int64),
                       "segment": seg.reshape(-1)[idx].astype(np.int64),
                       **{f"sum_{a}": zyx[k] + origin[k] for k, a in enumerate("zyx")}})
    g = df.groupby(["cell", "segment"], sort=True)
    out = g[["sum_z", "sum_y", "sum_x"]].sum()
    out.insert(0, "voxels", g.size())
    return out.reset_index().astype(np.int64)[PIECE_COLUMNS]


def add_piece_tables(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Piece tables of parts of a volume added into the whole's."""
    if not tables:
        return pd.DataFrame({c: np.zeros(0, np.int64) for c in PIECE_COLUMNS})
    return (pd.concat(tables, ignore_index=True).groupby(["cell", "segment"], sort=True)
            .sum().reset_index()[PIECE_COLUMNS])


def split_merge_errors(gt: np.ndarray, seg: np.ndarray, vs_zyx: tuple[float, float, float],
                       top: int = 10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`split_merge_errors_of` for volumes in memory."""
    return split_merge_errors_of(piece_table(gt, seg), vs_zyx, top)


def split_merge_errors_of(pieces: pd.DataFrame, vs_zyx: tuple[float, float, float],
                          top: int = 10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(splits, merges), largest first, from a piece table. A split: a true cell's voxels in
    a segment other than the one holding most of it (one row per extra piece). A merge: a
    segment's voxels of a cell other than the one it holds most of. Voxels and the piece's
    centroid (nm, x y z)."""
    table = pieces[pieces["segment"] != 0]
    rows: dict[str, pd.DataFrame] = {}
    for kind, owner, other in (("split", "cell", "segment"), ("merge", "segment", "cell")):
        ranked = table.sort_values(["voxels", other], ascending=[False, True], kind="stable")
        main = ranked.groupby(owner).head(1)
        extra = ranked.drop(main.index).sort_values("voxels", ascending=False, kind="stable")
        extra = extra.head(top).reset_index(drop=True)
        sums = extra[["sum_x", "sum_y", "sum_z"]].to_numpy(np.float64)
        mean = sums / extra["voxels"].to_numpy(np.float64)[:, None] * np.array(vs_zyx[::-1])
        centroid = [[float(v) for v in row] for row in mean]
        extra = extra[["cell", "segment", "voxels"]].copy()
        extra["main_" + other] = extra[owner].map(main.set_index(owner)[other])
        extra["location_nm"] = centroid
        rows[kind] = extra
    return rows["split"], rows["merge"]
