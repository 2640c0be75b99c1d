"""Stitching against the generator's truth, and the bad tile grids of the issue."""

from __future__ import annotations

import numpy as np
import pytest

from connectome_query.reconstruct.align import evaluate, stitch


@pytest.fixture(scope="module")
def stitched(raw_volume):
    flat = stitch.flat_field(raw_volume.tiles)
    return [stitch.stitch_section(t, raw_volume.layout, flat, z)
            for z, t in enumerate(raw_volume.tiles)]


def test_seams_agree_with_the_truth(raw_volume, stitched):
    plan = raw_volume.plan
    damaged = set(plan.missing) | set(plan.blurred) | {ln.z for ln in plan.lines}
    seams = {z: evaluate.stitched_sources(s, raw_volume.layout, plan, z)[1]
             for z, s in enumerate(stitched) if z not in plan.missing}
    every = evaluate.seam_error(list(seams.values()))
    clean = evaluate.seam_error([v for z, v in seams.items() if z not in damaged])
    assert every["rms"] <= 1.0, every
    assert clean["p99"] <= 1.0, clean


def test_tiles_are_placed_as_the_truth_says_or_the_section_is_reported(raw_volume, stitched):
    plan = raw_volume.plan
    placed = 0
    for z, s in enumerate(stitched):
        if z in plan.missing:
            assert s.warnings, z
            continue
        est = s.origins - s.origins.mean(axis=(0, 1))
        true = plan.origins[z] - plan.origins[z].mean(axis=(0, 1))
        if np.abs(est - true).max() >= 1.5:
            assert any(f"section {z}" in w for w in s.warnings), z
            continue
        placed += 1
        g = s.gain * plan.tile_gain[z]
        assert np.abs(g / g.mean() - 1).max() < 0.06, z
    assert placed >= len(stitched) - len(plan.missing) - 1


def test_a_missing_tile_is_named_and_its_area_masked(raw_volume):
    z = next(z for z in range(16) if z not in raw_volume.plan.missing)
    tiles = raw_volume.tiles[z].copy()
    tiles[0, 1] = 0
    s = stitch.stitch_section(tiles, raw_volume.layout, None, z)
    assert any(f"section {z}, tile (row 0, col 1)" in w and "missing" in w
               for w in s.warnings)
    assert not s.covered[:40, -40:].any()  # only that tile covered the corner
    assert s.covered[-40:, :40].all()


def test_a_tile_that_overlaps_nothing_is_named_and_left_out(raw_volume):
    plan = raw_volume.plan
    good = [z for z in range(16) if z not in plan.missing and z not in plan.blurred]
    z, other = good[0], good[-1]
    tiles = raw_volume.tiles[z].copy()
    tiles[1, 1] = np.rot90(raw_volume.tiles[other][0, 0], 2)  # another place's image
    s = stitch.stitch_section(tiles, raw_volume.layout, None, z)
    assert any(f"section {z}, tile (row 1, col 1)" in w and "overlaps no" in w
               for w in s.warnings), s.warnings
    assert not s.covered[-40:, -40:].any()


def test_a_wrong_tile_grid_is_refused_with_the_section(raw_volume):
    with pytest.raises(ValueError, match="section 3"):
        stitch.stitch_section(raw_volume.tiles[3][:, :, :-2], raw_volume.layout, None, 3)


def _exact_matches(layout: stitch.Layout, origins: np.ndarray
                   ) -> dict[tuple[int, int, int, int], list]:
    """Three correspondences per overlap from the true (unrotated) tile origins: a section
    point p seen at p - origin in each tile."""
    th, tw = layout.tile_shape
    out: dict[tuple[int, int, int, int], list] = {}
    for (ra, ca), (rb, cb), axis in stitch._pairs(layout.grid):
        pts = []
        for along in (24.0, 73.0, 122.0):
            ua = np.array([th - layout.overlap / 2, along] if axis == 0
                          else [along, tw - layout.overlap / 2])
            p = origins[ra, ca] + ua
            pts.append((ua, p - origins[rb, cb], 0.5, 0.1, 0.5, 0.1))
        out[(ra, ca, rb, cb)] = pts
    return out


def test_tile_positions_survive_matches_that_disagree_by_pixels():
    """A tile tied to the grid by two matches 1.2 px apart each way (as in a blurred overlap)
    is placed at their mean, not at its nominal place; a false 12 px match is ignored."""
    layout = stitch.Layout((2, 2), (148, 148), 40, (256, 256))
    jitter = np.array([[[0.0, 0.0], [2.0, -1.0]], [[-1.5, 3.0], [1.0, 2.5]]])
    true = layout.nominal_origins() + jitter
    matches = _exact_matches(layout, true)
    del matches[(1, 0, 1, 1)]  # tile (1, 0) hangs on its overlap with (0, 0) alone
    pair = matches[(0, 0, 1, 0)]
    for k, dx in ((0, 1.2), (2, -1.2)):
        ua, ub, *rest = pair[k]
        pair[k] = (ua, ub + np.array([0.0, dx]), *rest)
    del pair[1]
    ua, ub, *rest = matches[(0, 1, 1, 1)][1]
    matches[(0, 1, 1, 1)][1] = (ua, ub + np.array([12.0, 0.0]), *rest)
    origins, rotations = stitch._fit_positions(layout, matches, np.ones((2, 2), bool))
    est = origins - origins.mean(axis=(0, 1))
    exp = true - true.mean(axis=(0, 1))
    assert np.abs(est - exp).max() < 0.1, est - exp
    assert np.abs(rotations).max() < 1e-3


def test_robust_lstsq_minimises_the_huber_loss():
    """Against scipy's least_squares with the Huber loss on the same rows (all of them, the
    prior rows fitting to well inside the loss's quadratic part)."""
    from scipy.optimize import least_squares

    rng = np.random.default_rng(4)
    a = rng.normal(size=(40, 3))
    b = a @ np.array([1.0, -2.0, 0.5]) + rng.normal(0, 0.6, 40)
    b[:3] += np.array([2.5, -3.0, 2.0])  # moderate misfits: down-weighted, kept
    a = np.vstack([a, 1e-3 * np.eye(3)])
    b = np.concatenate([b, np.zeros(3)])
    ours = stitch.robust_lstsq(a, b, 40, rounds=200)
    ref = least_squares(lambda x: a @ x - b, np.zeros(3), loss="huber",
                        f_scale=stitch.MAX_FIT_RESIDUAL, xtol=1e-12, ftol=1e-12).x
    assert np.allclose(ours, ref, atol=1e-4), (ours, ref)
    plain = np.linalg.lstsq(a, b, rcond=None)[0]
    assert not np.allclose(plain, ref, atol=1e-2)  # the loss matters here


def _waves(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """A smooth test image with structure a few pixels across (values in [0, 1])."""
    return 0.5 + 0.2 * np.sin(y / 2.3 + 0.4) * np.cos(x / 1.9) + 0.15 * np.sin((x + y) / 3.1)


def test_blend_at_points_reads_the_tiles_where_asked_and_cubic_keeps_fine_structure():
    # a 1 x 2 grid of tiles cut from one analytic image, placed where they were cut
    lay = stitch.Layout((1, 2), (64, 64), 16, (64, 112))
    origins = lay.nominal_origins()
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float64)
    tiles = np.stack([_waves(yy + o[0], xx + o[1]) for o in origins[0]])[None]
    one, zero = np.ones((1, 2)), np.zeros((1, 2))
    use = np.ones((1, 2), bool)
    grid_img, _ = stitch.blend(tiles, use, origins, zero, one, zero, lay)
    p = np.moveaxis(np.mgrid[0:64, 0:112], 0, -1).astype(np.float64)
    at_grid, _ = stitch.blend(tiles, use, origins, zero, one, zero, lay, p)
    assert np.allclose(at_grid, grid_img, atol=1e-6)
    # off-grid points (a sub-pixel shift and a slight turn), away from the edges
    rng = np.random.default_rng(0)
    q = np.stack([rng.uniform(4, 59, (40, 40)), rng.uniform(4, 107, (40, 40))], -1)
    want = _waves(q[..., 0], q[..., 1])
    lin, cov = stitch.blend(tiles, use, origins, zero, one, zero, lay, q, order=1)
    cub, _ = stitch.blend(tiles, use, origins, zero, one, zero, lay, q, order=3)
    assert cov.all()
    err_lin, err_cub = np.abs(lin - want).mean(), np.abs(cub - want).mean()
    assert err_cub < 0.5 * err_lin
    assert err_cub < 0.01
