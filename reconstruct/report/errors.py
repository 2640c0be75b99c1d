"""Where a segmentation goes wrong against the truth: ERL per true cell and the largest split
and merge errors, each with a location (nm, x y z) to look at."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from connectome_query.reconstruct import metrics
from connectome_query.reconstruct.scoring import skeleton_arrays


def erl_per_cell(truth: dict[str, Any], seg: np.ndarray,
                 vs_zyx: tuple[float, float, float]) -> pd.DataFrame:
    """Per true cell: cable (nm) and its expected run length under `seg`, with the same rule
    as `metrics.erl` (a segment touching two cells' skeletons is a merger and counts nothing).
    The cable-weighted mean of `erl_nm` is `metrics.erl` of the whole volume."""
    sids, edges, lengths, vox = skeleton_arrays(truth["skeletons"], vs_zyx, seg.shape)
    labels = seg[vox[:, 0], vox[:, 1], vox[:, 2]].astype(np.int64)
    fg = labels != 0
    pairs = np.unique(np.stack([labels[fg], sids[fg]], axis=1), axis=0)
    seg_ids, n_cells = np.unique(pairs[:, 0], return_counts=True)
    mergers = seg_ids[n_cells > 1]
    cells = np.unique(sids)
    if len(edges) == 0:
        return pd.DataFrame({"cell": cells, "cable_nm": 0.0, "erl_nm": 0.0, "merged": False})
    a, b = edges[:, 0], edges[:, 1]
    cell_of_edge = sids[a]
    cable = pd.Series(lengths).groupby(cell_of_edge).sum()
    ok = (labels[a] == labels[b]) & (labels[a] != 0) & ~np.isin(labels[a], mergers)
    pieces = (pd.DataFrame({"cell": cell_of_edge[ok], "seg": labels[a][ok],
                            "length": lengths[ok]})
              .groupby(["cell", "seg"])["length"].sum())
    squares = (pieces**2).groupby(level="cell").sum()
    merged = pd.Series(labels[fg], index=sids[fg]).isin(mergers).groupby(level=0).any()
    out = pd.DataFrame({"cell": cells})
    out["cable_nm"] = out["cell"].map(cable).fillna(0.0)
    out["erl_nm"] = (out["cell"].map(squares).fillna(0.0)
                     / out["cable_nm"].where(out["cable_nm"] > 0)).fillna(0.0)
    out["merged"] = out["cell"].map(merged).fillna(False).astype(bool)
    return out.sort_values("cable_nm", ascending=False).reset_index(drop=True)


def centroids_nm(gt: np.ndarray, seg: np.ndarray, pairs: pd.DataFrame,
                 vs_zyx: tuple[float, float, float]) -> list[list[float]]:
    """Centroid (nm, x y z) of the voxels of each (cell, segment) row of `pairs`, from one pass
    over the voxels of those cells and segments."""
    if pairs.empty:
        return []
    near = np.isin(gt, pairs["cell"].unique()) & np.isin(seg, pairs["segment"].unique())
    flat = np.flatnonzero(near)
    z, y, x = np.unravel_index(flat, gt.shape)
    voxels = pd.DataFrame({"cell": gt.ravel()[flat].astype(np.int64),
                           "segment": seg.ravel()[flat].astype(np.int64),
                           "x": x * vs_zyx[2], "y": y * vs_zyx[1], "z": z * vs_zyx[0]})
    means = voxels.groupby(["cell", "segment"])[["x", "y", "z"]].mean()
    wanted = pd.MultiIndex.from_arrays([pairs["cell"].astype(np.int64),
                                        pairs["segment"].astype(np.int64)])
    return [[float(v) for v in row] for row in means.reindex(wanted).to_numpy()]


def split_merge_errors(gt: np.ndarray, seg: np.ndarray, vs_zyx: tuple[float, float, float],
                       top: int = 10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(splits, merges), largest first. A split: a true cell's voxels in a segment other than
    the one holding most of it (one row per extra piece). A merge: a segment's voxels of a cell
    other than the one it holds most of. Voxels and the piece's centroid (nm)."""
    g, p, n = metrics.contingency(gt, seg)
    table = pd.DataFrame({"cell": g.astype(np.int64), "segment": p.astype(np.int64),
                          "voxels": n})
    table = table[table["segment"] != 0]
    rows: dict[str, pd.DataFrame] = {}
    for kind, owner, other in (("split", "cell", "segment"), ("merge", "segment", "cell")):
        ranked = table.sort_values(["voxels", other], ascending=[False, True], kind="stable")
        main = ranked.groupby(owner).head(1)
        extra = ranked.drop(main.index).sort_values("voxels", ascending=False, kind="stable")
        extra = extra.head(top).reset_index(drop=True)
        extra["main_" + other] = extra[owner].map(main.set_index(owner)[other])
        extra["location_nm"] = centroids_nm(gt, seg, extra, vs_zyx)
        rows[kind] = extra
    return rows["split"], rows["merge"]
