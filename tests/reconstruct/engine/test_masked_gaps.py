"""Segments are joined across a run of wholly masked sections from the good sections either
side (footprint overlap, mutual best match), checked against overlaps counted pixel by pixel and
against planted cells reconstructed in blocks of two shapes."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from connectome_query.reconstruct import io, pipeline
from connectome_query.reconstruct.align.masks import Defect
from connectome_query.reconstruct.engine.cluster import ClusterSpec
from connectome_query.reconstruct.segment import gaps
from tests.support.reconstruct import pairs_by_hand, read_volume

GAP = (30, 31)
"""The sections masked whole in the planted volume."""


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_footprint_pairs_match_counting_by_hand(seed):
    rng = np.random.default_rng(seed)
    below = rng.integers(0, 6, (12, 14))
    above = below.copy()
    above[rng.random(below.shape) < 0.3] = rng.integers(0, 8)
    for frac in (0.2, 0.5, 0.8):
        got = {(int(a), int(b)) for a, b in gaps.footprint_pairs(below, above, frac)}
        assert got == pairs_by_hand(below, above, frac)
    assert len(gaps.footprint_pairs(below, above, 0.5)) > 0


def test_masked_runs_need_good_sections_on_both_sides():
    whole = np.array([1, 0, 0, 1, 1, 0, 1, 0, 1, 1], bool)
    assert gaps.masked_runs(whole) == [(3, 4), (6, 6)]


def test_join_renumbers_by_first_voxel():
    lut = np.array([0, 1, 2, 3, 2, 0], np.uint64)
    sizes = np.array([0, 5, 5, 5, 5, 5])
    first = np.array([0, 10, 20, 5, 30, 1])
    got = gaps.join(lut, sizes, first, np.array([[1, 3]], np.uint64))
    np.testing.assert_array_equal(got, [0, 1, 2, 1, 2, 0])


def _planted(shape: tuple[int, int, int]) -> np.ndarray:
    """Cell 1 straight through the volume; cell 2 ends below the gap and cell 3 starts above
    it, their footprints far apart; cell 4 straight, beside cell 1."""
    cells = np.zeros(shape, np.uint64)
    yy, xx = np.mgrid[:shape[1], :shape[2]]
    disc = [((yy - cy) ** 2 + (xx - cx) ** 2 <= 36) for cy, cx in
            ((16, 16), (48, 16), (16, 48), (48, 48))]
    cells[:, disc[0]] = 1
    cells[:GAP[0], disc[1]] = 2
    cells[GAP[1] + 1:, disc[2]] = 3
    cells[:, disc[3]] = 4
    return cells


def _affinities(cells: np.ndarray) -> np.ndarray:
    """Waterz-layout affinities: 1 between voxels of one cell, 0 elsewhere."""
    affs = np.zeros((3, *cells.shape), np.float32)
    for c in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[c], hi[c] = slice(None, -1), slice(1, None)
        same = (cells[tuple(hi)] == cells[tuple(lo)]) & (cells[tuple(hi)] != 0)
        affs[c][tuple(hi)] = same
    return affs


@pytest.fixture(scope="module")
def planted_runs(tmp_path_factory: pytest.TempPathFactory, clean_dir: Path,
                 cluster: ClusterSpec) -> tuple[np.ndarray, list[np.ndarray]]:
    """Planted cells (affinities from their labels) with sections GAP masked whole,
    reconstructed in blocks of two shapes."""
    tmp = tmp_path_factory.mktemp("gaps")
    em = tmp / "em"
    shutil.copytree(clean_dir, em)
    shape = tuple(io.read_volume_info(em)["shape_zyx"])
    cells = _planted(shape)  # type: ignore[arg-type]
    io.write_zarr(tmp / "affinities.zarr", _affinities(cells))
    flags = np.zeros(shape, np.uint8)
    flags[GAP[0]:GAP[1] + 1] = np.uint8(Defect.MISSING | Defect.FILLED)
    io.write_zarr(em / "defects.zarr", flags)
    info: dict[str, Any] = io.read_json(em / "volume.json", "volume")
    io.write_json(em / "volume.json", {**info, "defects": "defects.zarr"})
    segs = []
    for i, block in enumerate(((16, 32, 32), (24, 64, 40))):
        out = tmp / f"run{i}"
        pipeline.reconstruct(em, out, affinities_path=tmp / "affinities.zarr", block=block,
                             spec=cluster)
        segs.append(read_volume(out / "segmentation.zarr"))
    return cells, segs


def test_planted_cells_join_across_the_gap(planted_runs):
    cells, segs = planted_runs
    good = np.ones(cells.shape[0], bool)
    good[GAP[0]:GAP[1] + 1] = False
    for seg in segs:
        assert not seg[~good].any()  # masked voxels stay unlabelled
        for cell in (1, 4):  # straight cells: one segment each, across the gap
            ids = np.unique(seg[good][cells[good] == cell])
            assert len(ids) == 1 and ids[0] != 0
        two, three = (np.unique(seg[cells == c]) for c in (2, 3))
        assert len(two) == len(three) == 1 and two[0] != three[0]  # apart: not joined
        assert len(np.unique(seg)) == 5  # four segments and 0
    np.testing.assert_array_equal(segs[0], segs[1])  # whatever the block shape
