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
