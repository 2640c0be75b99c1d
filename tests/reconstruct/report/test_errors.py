"""ERL per cell and the split / merge tables against independent computations: a truth
segmentation with one cell cut in two and two cells joined."""

from __future__ import annotations

import numpy as np
import pandas as pd

from connectome_query.reconstruct import metrics
from connectome_query.reconstruct.report.errors import erl_per_cell, split_merge_errors
from connectome_query.reconstruct.scoring import skeleton_arrays
from tests.support.reconstruct import VS, truth_volume


def _damaged(seed: int) -> tuple[dict, np.ndarray, int, int, int, int]:
    _, truth = truth_volume(seed)
    gt = truth["segmentation"].astype(np.int64)
    sizes = pd.Series(gt[gt != 0]).value_counts()
    cut, keep, joined = (int(c) for c in sizes.index[:3])
    seg = gt.copy()
    z, y, x = np.nonzero(gt == cut)
    half = x > np.median(x)
    new = int(gt.max()) + 1
    seg[z[half], y[half], x[half]] = new
    seg[gt == joined] = keep
    return truth, seg, cut, new, keep, joined


def test_erl_per_cell_adds_up_to_the_volume_erl() -> None:
    truth, seg, cut, _, keep, joined = _damaged(5)
    per_cell = erl_per_cell(truth, seg, VS)
    sids, edges, lengths, vox = skeleton_arrays(truth["skeletons"], VS, seg.shape)
    labels = seg[vox[:, 0], vox[:, 1], vox[:, 2]].astype(np.int64)
    whole = metrics.erl(sids, edges, lengths, labels)
    weighted = float((per_cell["cable_nm"] * per_cell["erl_nm"]).sum()
                     / per_cell["cable_nm"].sum())
    assert abs(weighted - whole) <= 1e-6 * max(whole, 1.0)
    rows = per_cell.set_index("cell")
    assert rows.loc[keep, "merged"] and rows.loc[joined, "merged"]
    assert rows.loc[keep, "erl_nm"] == 0.0
    assert 0 < rows.loc[cut, "erl_nm"] < rows.loc[cut, "cable_nm"]
    untouched = rows.drop(index=[cut, keep, joined])
    untouched = untouched[~untouched["merged"]]
    # A cell whose skeleton lies in one segment runs its whole cable (minus edges leaving it).
    assert (untouched["erl_nm"] <= untouched["cable_nm"] + 1e-6).all()


def test_split_and_merge_tables() -> None:
    truth, seg, cut, new, keep, joined = _damaged(6)
    gt = truth["segmentation"].astype(np.int64)
    splits, merges = split_merge_errors(gt, seg, VS)
    # The cut cell's smaller half is its largest split, found where it was put.
    halves = {s: int(((gt == cut) & (seg == s)).sum()) for s in (cut, new)}
    small = min(halves, key=lambda s: (halves[s], s))
    row = splits[(splits["cell"] == cut)].iloc[0]
    assert (int(row["segment"]), int(row["voxels"])) == (small, halves[small])
    z, y, x = np.nonzero((gt == cut) & (seg == small))
    np.testing.assert_allclose(row["location_nm"],
                               [x.mean() * VS[2], y.mean() * VS[1], z.mean() * VS[0]])
    # The joined cells: the segment `keep` holds both; the smaller one is the merge error.
    sizes = {c: int(((gt == c) & (seg == keep)).sum()) for c in (keep, joined)}
    minor = min(sizes, key=lambda c: (sizes[c], -c))
    merged = merges[merges["segment"] == keep].iloc[0]
    assert (int(merged["cell"]), int(merged["voxels"])) == (minor, sizes[minor])
    assert splits["voxels"].is_monotonic_decreasing and merges["voxels"].is_monotonic_decreasing
    for table in (splits, merges):  # every piece's centroid, one mask per piece
        for r in table.itertuples():
            z, y, x = np.nonzero((gt == r.cell) & (seg == r.segment))
            np.testing.assert_allclose(r.location_nm,
                                       [x.mean() * VS[2], y.mean() * VS[1], z.mean() * VS[0]])
