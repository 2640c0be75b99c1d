"""Segments are joined across a run of wholly masked sections from the good sections either
side (pieces' overlap after each piece's drift, mutual best match), checked against overlaps
counted pixel by pixel, against discs drifting obliquely across a gap, against branches of one
segment meeting several across it, and against planted cells reconstructed in blocks of two
shapes; the masked sections then take a joined cell's segment where the good sections either
side both show it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import cc3d
import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree

from connectome_query.reconstruct import io, pipeline
from connectome_query.reconstruct.align.masks import Defect
from connectome_query.reconstruct.engine.cluster import ClusterSpec
from connectome_query.reconstruct.segment import gaps
from tests.support.reconstruct import (
    GAP_RULES,
    drifted_pairs_by_hand,
    pairs_by_hand,
    read_volume,
)

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


def _drifting_regions(seed: int, shape: tuple[int, int] = (24, 28)) -> np.ndarray:
    """Six sections of a random partition (10 regions, 6 ids: a segment may be in several
    pieces), each section the one before moved up to 2 px and three 4 x 4 patches relabelled
    at random."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0, 1, (10, 2)) * shape
    _, near = cKDTree(pts).query(np.argwhere(np.ones(shape)))
    sections = np.zeros((6, *shape), np.int64)
    sections[0] = rng.integers(0, 6, 10)[near].reshape(shape)
    for z in range(1, 6):
        sections[z] = np.roll(sections[z - 1], tuple(rng.integers(-2, 3, 2)), (0, 1))
        for _ in range(3):
            y, x = rng.integers(0, shape[0] - 4), rng.integers(0, shape[1] - 4)
            sections[z, y:y + 4, x:x + 4] = rng.integers(0, 8)
    return sections


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_drifted_pairs_match_counting_by_hand(seed):
    sections = _drifting_regions(seed)
    below, above = tuple(sections[:3]), tuple(sections[3:])
    found = {}
    for frac in (0.2, 0.3, 0.6):
        for span in (2, 3, 5):
            for behind in (1, 2):  # one section behind each face, or two
                b, a = below[2 - behind:], above[:behind + 1]
                got = {(int(x), int(y)) for x, y in gaps.drifted_pairs(b, a, span, frac)}
                assert got == drifted_pairs_by_hand(b, a, span, frac, *GAP_RULES)
                found[frac, span, behind] = got
    # the check can fail: the second section behind changes some answer
    assert any(found[f, s, 1] != found[f, s, 2] for f, s, _ in found)


def _random_discs(rng: np.random.Generator, first: int, shape=(40, 40)) -> np.ndarray:
    """Eight discs of random centre and radius (1.5 to 9 px) numbered first.., later ones
    painted over earlier ones: pieces of all sizes, small ones inside large ones."""
    out = np.zeros(shape, np.int64)
    for k in range(8):
        cy, cx, r = rng.uniform(0, shape[0]), rng.uniform(0, shape[1]), rng.uniform(1.5, 9)
        out[_disc((cy, cx), r, shape)] = first + k
    return out


def test_unlike_pieces_on_random_discs_match_counting_by_hand():
    unlike = 0
    for seed in range(6):
        rng = np.random.default_rng(seed)
        a, b = _random_discs(rng, 1), _random_discs(rng, 20)
        got = {(int(x), int(y)) for x, y in gaps.drifted_pairs((a, a), (b, b), 2)}
        assert got == drifted_pairs_by_hand((a, a), (b, b), 2, gaps.DRIFT_OVERLAP, *GAP_RULES)
        unlike += got != drifted_pairs_by_hand((a, a), (b, b), 2, gaps.DRIFT_OVERLAP,
                                               *GAP_RULES[:3], np.inf, 0.0)
    assert unlike >= 2  # the check can fail: unlike pieces were matched on some seeds


def test_without_a_section_behind_nothing_moves():
    sections = _drifting_regions(0)
    got = gaps.drifted_pairs((None, sections[2]), (sections[3], None), 3, 0.3)
    assert {(int(a), int(b)) for a, b in got} == drifted_pairs_by_hand(
        (None, sections[2]), (sections[3], None), 0, 0.3, *GAP_RULES)
    assert len(got)


def test_a_gap_face_needs_a_section_behind_it():
    face = np.ones((8, 8), np.int64)
    with pytest.raises(ValueError, match="one or two sections behind"):
        gaps.drifted_pairs((face,), (face, None), 2)
    with pytest.raises(ValueError, match="one or two sections behind"):
        gaps.drifted_pairs((None, face, face, face), (face, None), 2)


def _drifting_discs(nz: int, gap: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Discs (radius 5) moving obliquely (up to 3 px a section per axis), two of them
    side by side 12 px apart moving together; below the gap a disc is numbered k, above it
    k + 10 (each side its own segment), the gap's sections empty. Returns (labels, the
    true cell of each label)."""
    yy, xx = np.mgrid[:96, :96]
    starts = [(20, 14), (20, 26), (70, 20), (40, 70)]
    moves = [(2.0, 2.5), (2.0, 2.5), (-3.0, 1.5), (1.0, -2.0)]
    labels = np.zeros((nz, 96, 96), np.int64)
    for k, ((y0, x0), (dy, dx)) in enumerate(zip(starts, moves, strict=True), start=1):
        for z in range(nz):
            disc = (yy - y0 - dy * z) ** 2 + (xx - x0 - dx * z) ** 2 <= 25
            labels[z][disc] = k if z < gap[0] else k + 10
    labels[gap[0]:gap[1] + 1] = 0
    return labels, np.array([0, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4])


def test_discs_drifting_obliquely_join_across_the_gap():
    labels, cell = _drifting_discs(12, (5, 6))
    below, above = (labels[3], labels[4]), (labels[7], labels[8])
    got = {(int(a), int(b)) for a, b in gaps.drifted_pairs(below, above, 3)}
    assert got == {(k, k + 10) for k in range(1, 5)}  # each disc with itself, none swapped
    assert all(cell[a] == cell[b] for a, b in got)
    # unmoved, the footprints three sections apart overlap too little to join
    assert len(gaps.footprint_pairs(labels[4], labels[7])) < 4


def _disc(centre: tuple[float, float], radius: float, shape=(64, 64)) -> np.ndarray:
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius ** 2


def test_branches_of_one_segment_join_each_of_their_continuations():
    """Below the gap a cell's two branches are one segment (they meet further down), above
    it two segments (they meet only inside the gap or below): each branch joins its own."""
    below_face, below_behind = np.zeros((64, 64), np.int64), np.zeros((64, 64), np.int64)
    above_face, above_behind = np.zeros((64, 64), np.int64), np.zeros((64, 64), np.int64)
    for k, (y, x) in enumerate([(20, 20), (20, 44)]):  # the branches, drifting 1 px along x
        below_behind[_disc((y, x - 1), 6)] = 1
        below_face[_disc((y, x), 6)] = 1
        above_face[_disc((y, x + 2), 6)] = 11 + k
        above_behind[_disc((y, x + 3), 6)] = 11 + k
    below_face[_disc((48, 30), 5)] = 2  # another cell, ending in the gap
    got = {(int(a), int(b)) for a, b in gaps.drifted_pairs((below_behind, below_face),
                                                           (above_face, above_behind), 3)}
    assert got == {(1, 11), (1, 12)}


@pytest.mark.parametrize("radius, joins", [(5, True), (3, False)])
def test_a_small_piece_inside_a_much_larger_one_does_not_join(radius, joins):
    """A piece covered by another across the gap joins it while their areas are within
    `MAX_AREA_RATIO` times (radius 5 in 8: 2.4 times), not when one is many times the other
    and covers little of the union (radius 3 in 8: 7 times, a seventh of it)."""
    small, large = _disc((30, 30), radius).astype(np.int64), 5 * _disc((30, 30), 8)
    ratio = large.astype(bool).sum() / small.sum()
    assert (ratio <= gaps.MAX_AREA_RATIO) == joins
    assert joins or 1 / ratio < gaps.MIN_IOU  # the small one's share of the union
    got = {(int(a), int(b)) for a, b in gaps.drifted_pairs((small, small), (large, large), 2)}
    assert got == ({(1, 5)} if joins else set())
    # a big piece inside a small one's place, the other way round, alike
    got = {(int(a), int(b)) for a, b in gaps.drifted_pairs((large, large), (small, small), 2)}
    assert got == ({(5, 1)} if joins else set())


@pytest.mark.parametrize("growth, moves", [(1.5, True), (3.0, False)])
def test_a_piece_that_branches_behind_the_face_does_not_move(growth, moves):
    """A piece's drift is its centroid's shift from its continuation behind the face, unless
    the two areas differ more than `MAX_GROWTH` times (a junction, not motion)."""
    face = _disc((30, 30), 6).astype(np.int64)
    behind = np.zeros_like(face)
    behind[_disc((30, 28), 6 * np.sqrt(growth))] = 1
    _, segment, motion = gaps.piece_drift(face, behind)
    assert list(segment) == [0, 1]
    area = int(face.sum()) / int(behind.sum())
    assert (area >= 1 / gaps.MAX_GROWTH) == moves
    if moves:
        want = np.argwhere(face == 1).mean(0) - np.argwhere(behind == 1).mean(0)
        np.testing.assert_allclose(motion[1], want)
    else:
        np.testing.assert_array_equal(motion[1], 0)


@pytest.mark.parametrize("growth, both", [(1.0, True), (3.0, False)])
def test_a_pieces_drift_is_its_mean_step_over_two_sections(growth, both):
    """With a further section, a piece's drift is the mean of its step from its continuation
    behind the face and that continuation's step from the section after; the second step
    does not count across a junction (areas `growth` times apart), leaving the first."""
    face, behind, further = (np.zeros((64, 64), np.int64) for _ in range(3))
    face[_disc((30, 33), 6)] = 4
    behind[_disc((30, 30), 6)] = 4  # 3 px along x a section, then 1 px along y
    further[_disc((29, 30), 6 * np.sqrt(growth))] = 4
    _, _, one = gaps.piece_drift(face, behind)
    _, segment, two = gaps.piece_drift(face, behind, further)
    assert list(segment) == [0, 4]
    step = np.argwhere(face).mean(0) - np.argwhere(behind).mean(0)
    back = np.argwhere(behind).mean(0) - np.argwhere(further).mean(0)
    np.testing.assert_allclose(one[1], step)
    np.testing.assert_allclose(two[1], (step + back) / 2 if both else step)
    assert both == (abs(two[1] - one[1]).max() > 0.4)


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
    """Cell 1 through the volume, drifting 2.5 px a section along y over sections 26..36
    (across the gap its footprints overlap on a quarter of their area); cell 2 ends below
    the gap and cell 3 starts above it, their footprints far apart; cell 4 straight."""
    cells = np.zeros(shape, np.uint64)
    yy, xx = np.mgrid[:shape[1], :shape[2]]
    disc = [((yy - cy) ** 2 + (xx - cx) ** 2 <= 36) for cy, cx in
            ((16, 16), (48, 16), (16, 48), (48, 48))]
    for z in range(shape[0]):
        cy = 16 + 2.5 * (min(max(z, 26), 36) - 26)
        cells[z][(yy - cy) ** 2 + (xx - 16) ** 2 <= 36] = 1
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
                 cluster: ClusterSpec
                 ) -> tuple[np.ndarray, list[np.ndarray], list[pd.DataFrame]]:
    """Planted cells (affinities from their labels) with sections GAP masked whole,
    reconstructed in blocks of two shapes: the segmentations and segment tables."""
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
    segs, tables = [], []
    for i, block in enumerate(((16, 32, 32), (24, 64, 40))):
        out = tmp / f"run{i}"
        pipeline.reconstruct(em, out, affinities_path=tmp / "affinities.zarr", block=block,
                             spec=cluster)
        segs.append(read_volume(out / "segmentation.zarr"))
        tables.append(pd.read_parquet(out / "segments.parquet"))
    return cells, segs, tables


def test_planted_cells_join_across_the_gap(planted_runs):
    cells, segs, _ = planted_runs
    good = np.ones(cells.shape[0], bool)
    good[GAP[0]:GAP[1] + 1] = False
    below, above = cells[GAP[0] - 1], cells[GAP[1] + 1]
    both = (below == above) & (below != 0)  # where the good sections either side agree
    assert both.any() and set(np.unique(below[both])) == {1, 4}
    for seg in segs:
        for cell in (1, 4):  # drifting and straight: one segment each, across the gap
            ids = np.unique(seg[good][cells[good] == cell])
            assert len(ids) == 1 and ids[0] != 0
            # the masked sections hold it exactly where both faces show the cell, so it is
            # one connected object through the gap
            for z in range(GAP[0], GAP[1] + 1):
                np.testing.assert_array_equal(seg[z] == ids[0], both & (below == cell))
            assert cc3d.connected_components(seg == ids[0], connectivity=6).max() == 1
        assert not seg[~good][~np.broadcast_to(both, seg[~good].shape)].any()
        two, three = (np.unique(seg[cells == c]) for c in (2, 3))
        assert len(two) == len(three) == 1 and two[0] != three[0]  # apart: not joined
        assert len(np.unique(seg)) == 5  # four segments and 0
    np.testing.assert_array_equal(segs[0], segs[1])  # whatever the block shape


def test_agreed_labels_only_where_both_faces_hold_one_segment():
    rng = np.random.default_rng(3)
    below = rng.integers(0, 4, (9, 11)).astype(np.uint64)
    above = below.copy()
    above[rng.random(below.shape) < 0.4] = 7
    got = gaps.agreed(below, above)
    for (y, x), v in np.ndenumerate(got):
        assert v == (below[y, x] if below[y, x] == above[y, x] else 0)
    with pytest.raises(ValueError, match="differ in shape"):
        gaps.agreed(below, above[:, :5])


def test_segment_sizes_count_the_filled_voxels(planted_runs):
    _, segs, tables = planted_runs
    for seg, table in zip(segs, tables, strict=True):
        ids, counts = np.unique(seg[seg != 0], return_counts=True)
        got = table.set_index("segment_id")["size_voxels"]
        assert sorted(got.index) == ids.tolist()
        np.testing.assert_array_equal(got.loc[ids].to_numpy(), counts)
