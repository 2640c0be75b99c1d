"""The report's block-by-block reading against the same quantities from whole volumes in memory:
blocks that do not divide the volume give the same segment under every skeleton node, the same
(cell, segment) pieces and centroids, and the centre sections (subsampled on long axes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from connectome_query.reconstruct import io, metrics
from connectome_query.reconstruct.report import errors, volumes
from tests.support.reconstruct import VS


def _cells(seed: int) -> np.ndarray:
    """A (24, 40, 36) truth: boxes of cells of uneven sizes, some background."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices((24, 40, 36))
    gt = (z // 5) * 100 + (y // 7) * 10 + (x // 9) + 1
    gt[rng.random(gt.shape) < 0.05] = 0
    return gt.astype(np.uint64)


def _stored(tmp_path: Path, name: str, arr: np.ndarray) -> object:
    io.write_zarr(tmp_path / name, arr)
    return io.open_zarr(tmp_path / name)


def test_scan_in_blocks_is_the_whole_volume(tmp_path: Path) -> None:
    gt = _cells(3)
    rng = np.random.default_rng(0)
    seg = gt // np.uint64(10)  # cells joined along x
    seg[:, :, 22:] += np.uint64(1000)  # and split at x = 22
    seg[rng.random(seg.shape) < 0.01] = 0
    vox = rng.integers(0, gt.shape, size=(500, 3))
    labels, pieces = volumes.scan(_stored(tmp_path, "seg", seg), tmp_path / "seg",
                                  _stored(tmp_path, "gt", gt), tmp_path / "gt", vox,
                                  block=(7, 24, 17))
    np.testing.assert_array_equal(labels, seg[tuple(vox.T)].astype(np.int64))
    g, p, n = metrics.contingency(gt, seg)
    np.testing.assert_array_equal(pieces["cell"], g.astype(np.int64))
    np.testing.assert_array_equal(pieces["segment"], p.astype(np.int64))
    np.testing.assert_array_equal(pieces["voxels"], n)
    for r in pieces.sample(min(20, len(pieces)), random_state=0).itertuples():
        z, y, x = np.nonzero((gt == r.cell) & (seg == r.segment))
        assert (r.sum_z, r.sum_y, r.sum_x) == (z.sum(), y.sum(), x.sum())


def test_split_merge_errors_of_a_scan_are_the_in_memory_ones(tmp_path: Path) -> None:
    gt = _cells(4)
    seg = np.where(np.arange(36)[None, None, :] < 13, gt, gt // np.uint64(10))
    _, pieces = volumes.scan(_stored(tmp_path, "seg", seg), tmp_path / "seg",
                             _stored(tmp_path, "gt", gt), tmp_path / "gt", np.zeros((0, 3)),
                             block=(13, 64, 11))
    for a, b in zip(errors.split_merge_errors_of(pieces, VS),
                    errors.split_merge_errors(gt, seg, VS), strict=True):
        assert a.drop(columns="location_nm").equals(b.drop(columns="location_nm"))
        np.testing.assert_allclose(np.array(a["location_nm"].tolist()),
                                   np.array(b["location_nm"].tolist()))


@pytest.mark.parametrize("max_side", [1000, 20])
def test_centre_sections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                         max_side: int) -> None:
    arr = np.arange(30 * 45 * 50, dtype=np.uint64).reshape(30, 45, 50)
    monkeypatch.setattr(volumes, "MAX_SIDE", max_side)
    got = volumes.centre_sections(_stored(tmp_path, "a", arr), tmp_path / "a", "test")
    k = [-(-s // max_side) for s in arr.shape]
    np.testing.assert_array_equal(got["xy"], arr[15, ::k[1], ::k[2]])
    np.testing.assert_array_equal(got["xz"], arr[::k[0], 22, ::k[2]])
    np.testing.assert_array_equal(got["yz"], arr[::k[0], ::k[1], 25])
    assert max(max(s.shape) for s in got.values()) <= max_side
