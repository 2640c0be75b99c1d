"""Defect masks against the truth; filling and contrast against independent computation."""

from __future__ import annotations

import numpy as np
import pytest

from connectome_query.reconstruct.align import defects, evaluate, restore, stitch
from connectome_query.reconstruct.align.masks import Defect, has


@pytest.fixture(scope="module")
def found(raw_volume):
    flat = stitch.flat_field(raw_volume.tiles)
    st = [stitch.stitch_section(t, raw_volume.layout, flat, z)
          for z, t in enumerate(raw_volume.tiles)]
    flags = defects.classify_sections([defects.section_quality(s.image, s.covered) for s in st])
    masks = np.stack([(defects.line_defects(s.image, s.covered) if not flags[z]
                       else np.zeros(s.image.shape, np.uint8)) | flags[z]
                      for z, s in enumerate(st)])
    truth = np.stack([evaluate.truth_in_stitched_frame(
        raw_volume.truth_masks[z],
        evaluate.stitched_sources(s, raw_volume.layout, raw_volume.plan, z)[0])
        for z, s in enumerate(st)])
    covered = np.stack([s.covered for s in st])
    return flags, evaluate.defect_report(masks, truth, covered)


def test_missing_and_blurred_sections_are_found(raw_volume, found):
    flags, _ = found
    plan = raw_volume.plan
    assert set(np.flatnonzero(has(flags, Defect.MISSING))) == set(plan.missing)
    assert set(np.flatnonzero(has(flags, Defect.BLUR))) == set(plan.blurred)


def test_defect_area_recall_and_precision(found):
    _, report = found
    assert report["all"]["recall"] >= 0.9 and report["all"]["precision"] >= 0.8, report
    assert report["lines"]["recall"] >= 0.9, report["lines"]


def test_fold_and_crack_precision(found):
    # bright parts of cells 40-85 px long passed for cracks (precision 0.65-0.75) before
    # folds and cracks had to reach 120 px
    _, report = found
    assert report["lines"]["precision"] >= 0.8, report["lines"]


def test_fill_is_linear_between_the_nearest_good_sections():
    rng = np.random.default_rng(0)
    vol = rng.random((9, 5, 4)).astype(np.float32)
    bad = rng.random(vol.shape) < 0.35
    bad[0, 0, 0] = bad[1, 0, 0] = True  # no good voxel below: the one above is used
    out = restore.fill_from_neighbours(vol, bad)
    for z, y, x in np.argwhere(bad):
        good = np.flatnonzero(~bad[:, y, x])
        below, above = good[good < z], good[good > z]
        if below.size and above.size:
            b, a = below[-1], above[0]
            want = vol[b, y, x] + (z - b) / (a - b) * (vol[a, y, x] - vol[b, y, x])
        elif below.size or above.size:
            want = vol[(below[-1:] if below.size else above[:1])[0], y, x]
        else:
            want = vol[z, y, x]
        assert out[z, y, x] == pytest.approx(want, abs=1e-6)
    assert np.array_equal(out[~bad], vol[~bad])


def test_fillable_is_every_bad_voxel_with_a_good_one_in_its_column():
    rng = np.random.default_rng(4)
    bad = rng.random((6, 7, 5)) < 0.5
    bad[:, 0, 0] = True  # a column with nothing to fill from
    got = restore.fillable(bad)
    for z, y, x in np.ndindex(bad.shape):
        assert got[z, y, x] == (bad[z, y, x] and not bad[:, y, x].all())


def _tissue(seed: int) -> np.ndarray:
    """A 96² section of random grey levels in 0.2-0.7."""
    return np.random.default_rng(seed).random((96, 96)).astype(np.float32) * 0.5 + 0.2


@pytest.mark.parametrize("mode", ["linear", "clahe"])
def test_contrast_leaves_filled_pixels_out_of_its_statistics(mode):
    # a filled area holding dark guesses must not stretch the tissue of the rest of the section
    img = _tissue(5)
    filled = np.zeros(img.shape, bool)
    filled[10:40, 10:60] = True
    bad = np.zeros(img.shape, bool)
    a, b = img.copy(), img.copy()
    a[filled], b[filled] = 0.0, _tissue(6)[filled]
    out_a = restore.normalise_section(a, bad, mode, ignore=filled)
    out_b = restore.normalise_section(b, bad, mode, ignore=filled)
    ref = restore.normalise_section(img, bad, mode, ignore=filled)
    if mode == "linear":
        assert np.array_equal(out_a[~filled], out_b[~filled])
        assert np.array_equal(out_a[~filled], ref[~filled])
        # stretched like the rest, not set to one grey: 0.0 sits below the good pixels' 1st
        # percentile, so it comes out darker than almost all of them
        assert out_a[filled].max() <= np.percentile(out_a[~filled], 2)
    # counted in the statistics, the dark filled area would have moved the tissue's grey
    counted = restore.normalise_section(a, bad, mode)
    assert abs(float(np.median(counted[~filled])) - float(np.median(out_a[~filled]))) > 5


@pytest.mark.parametrize("mode", ["linear", "clahe"])
def test_contrast_ignores_masked_pixels(mode):
    img = _tissue(2)
    bad = np.zeros(img.shape, bool)
    bad[30:50, 10:80] = True
    a, b = img.copy(), img.copy()
    a[bad], b[bad] = 0.0, 1.0
    out_a = restore.normalise_section(a, bad, mode)
    out_b = restore.normalise_section(b, bad, mode)
    assert np.array_equal(out_a[~bad], out_b[~bad])
    with pytest.raises(ValueError, match="contrast mode"):
        restore.normalise_section(img, bad, "histogram")


@pytest.mark.parametrize("mode", ["linear", "clahe"])
def test_masked_pixels_come_out_at_the_good_pixels_median_grey(mode):
    # black (or white) masked borders would shift the mean and spread each section is
    # normalised by before the network; they must come out as the good pixels' middle grey
    img = _tissue(3)
    bad = np.zeros(img.shape, bool)
    bad[:, :20] = True
    img[bad] = 0.0
    out = restore.normalise_section(img, bad, mode)
    assert np.unique(out[bad]).size == 1
    assert abs(float(out[bad][0]) - float(np.median(out[~bad]))) <= 1.0
