"""The truth carried into a volume's frame (`align.truth_frame`), against transforms whose
effect is known in closed form, and against the generator's own deformation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from connectome_query.reconstruct import io, scoring, synth
from connectome_query.reconstruct.align import rawdir, stitch, truth_frame, warp
from connectome_query.reconstruct.align.masks import LINE_DEFECTS, has
from connectome_query.reconstruct.synth import raw

LAYOUT = stitch.Layout((2, 2), (24, 24), 8, (40, 40))
STRIDE = 8


def _nodes(offset: tuple[float, float]) -> np.ndarray:
    grid = (int(np.ceil((LAYOUT.section_shape[0] - 1) / STRIDE)) + 1,
            int(np.ceil((LAYOUT.section_shape[1] - 1) / STRIDE)) + 1)
    return warp.identity_nodes(grid, STRIDE) + np.array(offset)


def _frame(true_o: np.ndarray, fit_o: np.ndarray, rot: np.ndarray, map_offset: tuple[int, int],
           d: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    ny, nx = LAYOUT.section_shape
    used = np.ones(LAYOUT.grid, bool)
    src, covered = truth_frame.stitched_truth((fit_o, rot, used), (true_o, rot), LAYOUT)
    coords = warp.source_coordinates(_nodes(map_offset), STRIDE, (ny, nx))
    deformation = np.broadcast_to(np.array(d, np.float32)[:, None, None], (2, ny, nx)).copy()
    return truth_frame.section_positions(coords, src, covered, deformation,
                                         np.zeros((ny, nx), np.uint8))


def test_shifts_add_up_to_the_known_displacement():
    """Map offset m, stitch misplacing every tile by e, deformation d: pixel p shows the
    undeformed tissue at p + m - e + d, known where p + m is covered and that lies inside."""
    ny, nx = LAYOUT.section_shape
    true_o = LAYOUT.nominal_origins() + np.array([[[1, -1], [0, 2]], [[-2, 0], [1, 1]]])
    e, m, d = np.array([1, -2]), (-1, 2), (2, 3)
    q, known = _frame(true_o, true_o + e, np.zeros(LAYOUT.grid), m, d)
    yy, xx = np.mgrid[0:ny, 0:nx]
    shift = np.array(m) - e + np.array(d)
    expect_q = np.stack([yy, xx], -1) + shift
    # independent: the fitted tiles cover their rectangles; positions must fall in the section
    s = np.stack([yy + m[0], xx + m[1]], -1)
    top = np.array([ny - 1, nx - 1])

    def expected(b: int) -> np.ndarray:
        """Known pixels with every bound pulled in by b px (b = 1: clear of rounding)."""
        cov = np.zeros((ny, nx), bool)
        for o in (true_o + e).reshape(-1, 2):
            cov |= ((s >= o + b) & (s <= o + np.array(LAYOUT.tile_shape) - 1 - b)).all(-1)
        for pos in (expect_q, s, s - e):  # tissue, stitched and section positions inside
            cov &= ((pos >= b) & (pos <= top - b)).all(-1)
        return cov

    assert not (known & ~expected(0)).any()
    assert not (expected(1) & ~known).any()
    assert np.allclose(q[known], expect_q[known], atol=1e-6)

    truth = np.random.default_rng(0).integers(1, 50, (ny, nx)).astype(np.uint64)
    labels = truth_frame.labels_at(truth, q, known)
    assert np.array_equal(labels[known], truth[expect_q[known][:, 0], expect_q[known][:, 1]])
    assert not labels[~known].any()

    pix = np.argwhere(known)[::7]
    moved, found = truth_frame.move_points((pix + shift).astype(float), q, known)
    assert found.all() and np.array_equal(moved, pix)
    # a position no pixel shows (outside the tissue the pixels show) is not found
    _, found = truth_frame.move_points(np.array([[-20.0, -20.0]]), q, known)
    assert not found.any()


def test_a_stretched_frame_still_finds_the_points_it_shows():
    """Pixel p shows tissue at 3 p: a point between two pixels' positions (1.5 px from each)
    is shown, one beyond the last pixel's reach is not."""
    yy, xx = np.mgrid[0:10, 0:10].astype(float)
    q = 3 * np.stack([yy, xx], -1)
    known = np.ones((10, 10), bool)
    assert np.allclose(truth_frame.pixel_spacing(q, known), 3.0)
    pts = np.array([[3 * 4 + 1.4, 3 * 7], [3 * 2, 3 * 5 - 1.4], [3 * 9 + 4.0, 0.0]])
    moved, found = truth_frame.move_points(pts, q, known)
    assert found.tolist() == [True, True, False]
    assert moved[:2].tolist() == [[4, 7], [2, 5]]


def test_rotated_tiles_placed_where_they_were_imaged_give_the_truth_back():
    ny, nx = LAYOUT.section_shape
    rot = np.deg2rad(np.array([[0.3, -0.2], [0.25, -0.3]]))
    o = LAYOUT.nominal_origins()
    q, known = _frame(o, o, rot, (0, 0), (0, 0))
    p = np.moveaxis(np.mgrid[0:ny, 0:nx], 0, -1).astype(float)
    assert known.mean() > 0.9
    assert np.abs(q[known] - p[known]).max() < 1e-6


def test_tile_placement_is_the_generators():
    plan = raw.plan_raw((12, 96, 96), raw.RawConfig(seed=3))
    u = np.random.default_rng(1).uniform(0, 50, (20, 2))
    for z, r, c in ((0, 0, 0), (3, 1, 0), (2, 1, 1)):
        ours = truth_frame.tile_to_section(plan.origins[z, r, c], plan.rotations[z, r, c],
                                           plan.tile_shape, u)
        assert np.allclose(ours, raw.tile_to_section(plan, z, r, c, u))
        back = stitch.tile_coordinates(ours, plan.origins[z, r, c], plan.rotations[z, r, c],
                                       plan.tile_shape)
        assert np.allclose(back, u)


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("raw")
    plan = rawdir.write_synthetic_raw(out, synth.SynthConfig((16, 96, 96), seed=41),
                                      raw.RawConfig(seed=41, overlap=16))
    return out, plan


def _true_placement(plan: raw.RawPlan) -> truth_frame.Placement:
    nz, ny, nx = plan.shape_zyx
    grid = (int(np.ceil((ny - 1) / STRIDE)) + 1, int(np.ceil((nx - 1) / STRIDE)) + 1)
    nodes = np.broadcast_to(warp.identity_nodes(grid, STRIDE), (nz, *grid, 2)).copy()
    return truth_frame.Placement(plan.origins, plan.rotations, np.ones(plan.origins.shape[:3],
                                                                       bool), nodes, STRIDE)


def test_on_disk_truth_follows_the_generators_deformation(raw_dir, tmp_path):
    """Tiles stitched where they were imaged and identity maps: the frame is the deformed
    sections', so pixel p shows the undeformed truth at p + D(p), D recomputed here from the
    generator's plan."""
    raw_path, plan = raw_dir
    em = tmp_path / "em"
    fractions = truth_frame.write_truth_in_frame(raw_path, em, _true_placement(plan))
    und = io.read_truth(raw_path / "truth" / "undeformed", plan.shape_zyx)
    assert und is not None
    seg = np.asarray(io.open_zarr(em / "truth" / "segmentation.zarr").read().result())
    known = np.asarray(io.open_zarr(em / "truth" / "known.zarr").read().result()).astype(bool)
    nz, ny, nx = plan.shape_zyx
    yy, xx = np.mgrid[0:ny, 0:nx]
    for z in range(nz):
        d, mask = raw.section_deformation(plan, z)
        if z in plan.missing:
            assert not known[z].any()
            continue
        qy, qx = np.round(yy + d[0]).astype(int), np.round(xx + d[1]).astype(int)
        inside = (qy >= 0) & (qy < ny) & (qx >= 0) & (qx < nx) & ~has(mask, LINE_DEFECTS)
        k = known[z]
        assert k.sum() > 0.8 * inside.sum() and not (k & ~inside).any()
        assert np.array_equal(seg[z][k], und["segmentation"][z][qy[k], qx[k]])
        assert not seg[z][~k].any()
    assert 0.5 < fractions["voxels_known"] < 1.0

    nodes = pd.read_parquet(em / "truth" / "skeletons.parquet")
    kept = und["skeletons"].set_index("node_id").loc[nodes["node_id"]]
    assert 0.5 < len(nodes) / len(und["skeletons"]) == pytest.approx(
        fractions["skeletons_known"])
    vx, vy, vz = (float(v) for v in rawdir.read_raw_info(raw_path).voxel_size_nm_xyz)
    z = np.round(nodes["z"].to_numpy() / vz).astype(int)
    py = np.round(nodes["y"].to_numpy() / vy).astype(int)
    px = np.round(nodes["x"].to_numpy() / vx).astype(int)
    ds = {int(s): raw.section_deformation(plan, int(s))[0] for s in np.unique(z)}
    shown = np.array([[py[i] + ds[z[i]][0, py[i], px[i]], px[i] + ds[z[i]][1, py[i], px[i]]]
                      for i in range(len(z))])
    true_yx = kept[["y", "x"]].to_numpy() / np.array([vy, vx])
    assert np.abs(shown - true_yx).max() <= truth_frame.MAX_POINT_PX + 1e-6
    # cable is measured in the tissue: edge lengths between the kept nodes' own positions
    _, edges, lengths, _ = scoring.skeleton_arrays(nodes, (vz, vy, vx), plan.shape_zyx)
    orig = kept[["x", "y", "z"]].to_numpy(float)
    assert len(edges) > 0.4 * len(nodes)
    assert np.allclose(lengths, np.linalg.norm(orig[edges[:, 0]] - orig[edges[:, 1]], axis=1))
    syn = pd.read_parquet(em / "truth" / "synapses.parquet")
    assert set(syn["synapse_id"]) <= set(und["synapses"]["synapse_id"])


def test_synapses_are_judged_by_their_cleft_in_the_frame(raw_dir, tmp_path):
    """A synapse is in the frame's truth exactly when 4 or more of its cleft voxels are known
    there (counted here from the written clefts.zarr); one whose centroid lies in a missing
    section sits at the centroid of its known cleft voxels."""
    raw_path, plan = raw_dir
    em = tmp_path / "em"
    truth_frame.write_truth_in_frame(raw_path, em, _true_placement(plan))
    und = io.read_truth(raw_path / "truth" / "undeformed", plan.shape_zyx)
    assert und is not None
    clefts = np.asarray(io.open_zarr(em / "truth" / "clefts.zarr").read().result())
    ids, counts = np.unique(clefts[clefts > 0], return_counts=True)
    shown = {int(i) for i, c in zip(ids, counts, strict=True) if c >= 4}
    syn = pd.read_parquet(em / "truth" / "synapses.parquet")
    assert set(syn["synapse_id"]) == shown & set(und["synapses"]["synapse_id"])
    vx, vy, vz = (float(v) for v in rawdir.read_raw_info(raw_path).voxel_size_nm_xyz)
    und_z = und["synapses"].set_index("synapse_id")["z"]
    late = [s for s in syn["synapse_id"] if round(und_z[s] / vz) in plan.missing]
    assert late, "the volume should hold a synapse centred in a missing section"
    for s in late:
        zz, yy, xx = np.nonzero(clefts == s)
        row = syn.set_index("synapse_id").loc[s]
        assert row[["x", "y", "z"]].to_numpy(float) == pytest.approx(
            [xx.mean() * vx, yy.mean() * vy, zz.mean() * vz])
        assert round(row["z"] / vz) not in plan.missing
