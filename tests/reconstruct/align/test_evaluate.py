"""The alignment residual's definitions, on positions made up for the test."""

from __future__ import annotations

import numpy as np

from connectome_query.reconstruct.align import evaluate


def _positions(offsets: np.ndarray, shape: tuple[int, int] = (6, 7)) -> np.ndarray:
    """(z, y, x, 2): every pixel of section z shows tissue at its own place + offsets[z]."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    base = np.stack([yy, xx], -1)
    return base[None] + offsets[:, None, None, :]


def test_strict_residual_counts_a_drift_that_the_smooth_one_forgives():
    z = np.arange(16, dtype=np.float64)
    drift = np.stack([0.6 * z, -0.3 * z], -1)  # tissue running obliquely, 0.67 px a section
    q = _positions(drift)
    valid = np.ones(q.shape[:3], bool)
    strict = evaluate.alignment_residual(q, valid)
    # independent: the rms distance of a line's points from its mean
    expected = np.sqrt(np.mean(np.sum((drift - drift.mean(0)) ** 2, -1)))
    assert np.isclose(strict.rms, expected)
    smooth = evaluate.alignment_residual(q, valid, trend_sections=2.0)
    assert smooth.rms < 0.25 * strict.rms  # only the ends, where the trend is one-sided


def test_smooth_residual_still_sees_a_section_out_of_place():
    offsets = np.zeros((16, 2))
    offsets[7] = (5.0, 0.0)
    q = _positions(offsets)
    valid = np.ones(q.shape[:3], bool)
    smooth = evaluate.alignment_residual(q, valid, trend_sections=2.0)
    # the Gaussian trend at section 7 holds 5 px times the section's own weight
    w = np.exp(-0.5 * ((np.arange(16) - 7) / 2.0) ** 2)
    own = 5.0 * (1 - w[7] / w.sum())
    assert smooth.max >= own - 1e-9
    assert smooth.max > 3.5


def test_invalid_sections_are_left_out():
    offsets = np.zeros((5, 2))
    offsets[2] = (40.0, 40.0)
    q = _positions(offsets)
    valid = np.ones(q.shape[:3], bool)
    valid[2] = False
    for s in (0.0, 2.0):
        assert evaluate.alignment_residual(q, valid, s).max < 1e-9


def test_positions_are_read_from_covered_pixels_only():
    """A pixel whose bilinear look-up of the stitched sources reaches an uncovered pixel
    (source 0) has no true position and is not valid tissue."""
    ny, nx = 20, 20
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float64)
    src = np.stack([yy, xx], -1) + 50.0  # the stitched frame shows section pixels + 50
    covered = np.ones((ny, nx), bool)
    covered[:, :5] = False
    src[~covered] = 0.0
    coords = np.stack([yy, xx + 0.5]).astype(np.float32)  # half a pixel to the right
    q = evaluate.tissue_positions(coords, src, np.zeros((2, 80, 80), np.float32))
    ok = evaluate.valid_tissue(coords, src, np.zeros((80, 80), np.uint8), covered, q, 0)
    assert not ok[:, :5].any()  # x 4.5 reads the uncovered pixel 4
    assert ok[:, 5:nx - 1].all()
    np.testing.assert_allclose(q[ok], (np.stack([yy, xx + 0.5], -1) + 50.0)[ok], atol=1e-4)


def test_residual_parts_split_translation_rotation_and_the_rest():
    """Sections offset by a translation, a small rotation and a bump of their own: each part
    lands in its own term, and the squares add up to the strict residual's."""
    from connectome_query.reconstruct.align import trial

    rng = np.random.default_rng(2)
    shape = (20, 24)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    centred = np.stack([yy - yy.mean(), xx - xx.mean()], -1)
    shift = rng.normal(0, 2.0, (5, 2))
    q = _positions(shift, shape)
    valid = np.ones(q.shape[:3], bool)
    parts = trial.residual_parts(q, valid)
    expected = np.sqrt(np.mean(np.sum((shift - shift.mean(0)) ** 2, -1)))
    assert np.isclose(parts["translation"], expected) and parts["linear"] < 1e-9
    rot = 0.01 * np.array([1, -1, 2, 0, -2], float)  # radians, summing to 0 over sections
    q = q + rot[:, None, None, None] * centred[None][..., ::-1] * np.array([-1.0, 1.0])
    bump = np.exp(-((yy - 10) ** 2 + (xx - 12) ** 2) / 8.0)
    q[2, ..., 0] += bump - bump.mean()
    parts = trial.residual_parts(q, valid)
    total = evaluate.alignment_residual(q, valid).rms
    assert np.isclose(sum(v**2 for v in parts.values()), total**2)
    assert np.isclose(parts["translation"], expected) and parts["linear"] > 0.05
    assert parts["non_linear"] > 0.05


def test_residual_by_edge_distance_groups_pixels_by_their_border_distance():
    """Two sections whose positions differ by 4 px in a frame 8 px wide along the border and
    by 1 px inside: the halves' offsets are ±2 and ±0.5 px (the strict residual against
    their mean), so the bands read 2 px and 0.5 px; an invalid pixel is left out."""
    from connectome_query.reconstruct.align import trial

    shape = (40, 50)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    border = np.minimum(np.minimum(yy, shape[0] - 1 - yy), np.minimum(xx, shape[1] - 1 - xx))
    gap = np.where(border < 8, 4.0, 1.0)
    q = np.zeros((2, *shape, 2))
    q[1, ..., 1] = gap
    valid = np.ones((2, *shape), bool)
    valid[1, 20, 25] = False  # its partner alone is no residual either
    out = trial.residual_by_edge(q, valid, bands=(8,))
    assert set(out) == {"0-8", "8-"}
    assert np.isclose(out["0-8"], 2.0) and np.isclose(out["8-"], 0.5)
    q[1, 20, 25, 1] = 100.0  # an invalid pixel changes nothing
    assert trial.residual_by_edge(q, valid, bands=(8,)) == out
    empty = trial.residual_by_edge(q, valid, bands=(8, 1000))
    assert np.isnan(empty["1000-"])
