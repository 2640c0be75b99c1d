"""The raw preset: its tiles show what its truth says they show."""

from __future__ import annotations

import re

import numpy as np
import pytest
import scipy.ndimage as ndi

from connectome_query.reconstruct.align.masks import Defect, has
from connectome_query.reconstruct.synth import raw


def _clean_section(plan: raw.RawPlan) -> int:
    damaged = set(plan.missing) | set(plan.blurred) | {ln.z for ln in plan.lines}
    return next(z for z in range(plan.shape_zyx[0]) if z not in damaged)


def test_tiles_show_the_tissue_the_truth_says(raw_volume):
    """Recompute a tile from the undeformed image and the recorded truth (tile transform,
    deformation, gains, vignetting) and compare with the tile the preset wrote."""
    plan = raw_volume.plan
    z = _clean_section(plan)
    th, tw = plan.tile_shape
    u = np.moveaxis(np.mgrid[8:th - 8, 8:tw - 8], 0, -1).astype(np.float64)
    for r, c in ((0, 0), (1, 1)):
        p = raw.tile_to_section(plan, z, r, c, u)
        d = raw_volume.deformation[z]
        q = p + np.stack([ndi.map_coordinates(d[k], [p[..., 0], p[..., 1]], order=1,
                                              mode="nearest") for k in range(2)], -1)
        lo, hi = raw.TISSUE_RANGE
        t = lo + (hi - lo) * ndi.map_coordinates(
            raw_volume.undeformed[z].astype(np.float64) / 255, [q[..., 0], q[..., 1]],
            order=1, mode="mirror")
        t = t * plan.section_gain[z] + plan.section_offset[z]
        t = (t * plan.tile_gain[z, r, c] + plan.tile_offset[z, r, c]) * raw.vignette(
            plan.tile_shape, plan.config.vignetting)[8:th - 8, 8:tw - 8]
        seen = raw_volume.tiles[z][r, c, 8:th - 8, 8:tw - 8] / 255.0
        inside = (p >= 2).all(-1) & (p[..., 0] < plan.shape_zyx[1] - 2) & (
            p[..., 1] < plan.shape_zyx[2] - 2)
        assert np.corrcoef(t[inside], seen[inside])[0, 1] > 0.9
        assert np.abs(t[inside] - seen[inside]).mean() < 0.03


def test_defects_are_recorded_where_they_are(raw_volume):
    plan = raw_volume.plan
    assert plan.missing and plan.blurred and plan.lines
    runs = np.split(np.array(plan.missing), np.flatnonzero(np.diff(plan.missing) > 1) + 1)
    assert sorted(len(r) for r in runs) == sorted(plan.config.missing_runs)
    for z in plan.missing:
        assert has(raw_volume.truth_masks[z], Defect.MISSING).all()
        assert raw_volume.tiles[z].std() < 6  # noise only, no tissue
    for ln in plan.lines:
        band = has(raw_volume.truth_masks[ln.z], ln.kind)
        assert band.sum() > ln.width * 50
        yy, xx = np.mgrid[0:plan.shape_zyx[1], 0:plan.shape_zyx[2]]
        assert (np.abs(ln.signed_distance(yy, xx)[band]) < ln.width / 2).all()


def test_the_plan_is_decided_by_the_seed():
    a = raw.plan_raw((16, 128, 128), raw.RawConfig(seed=3))
    b = raw.plan_raw((16, 128, 128), raw.RawConfig(seed=3))
    c = raw.plan_raw((16, 128, 128), raw.RawConfig(seed=4))
    assert np.array_equal(a.origins, b.origins) and a.missing == b.missing
    assert not np.array_equal(a.origins, c.origins)


def test_sections_too_small_for_the_overlap_are_refused_with_the_size_they_need():
    cfg = raw.RawConfig()
    with pytest.raises(ValueError, match=r"96x96 px.*tiles of 68x68 px.*at least (\d+)x\1 px"):
        cfg.check_section((96, 96))
    need = int(re.search(r"at least (\d+)x", _message(cfg, (96, 96))).group(1))
    cfg.check_section((need, need))  # the size it names is accepted ...
    tile = cfg.tile_shape((need, need))
    assert cfg.overlap < min(tile) // 2  # ... and meets the raw directory's rule
    with pytest.raises(ValueError):  # one pixel less is not
        cfg.check_section((need - 1, need))


def _message(cfg: raw.RawConfig, shape: tuple[int, int]) -> str:
    try:
        cfg.check_section(shape)
    except ValueError as e:
        return str(e)
    raise AssertionError(f"{shape} was accepted")
