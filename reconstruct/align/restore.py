"""Restoration of an aligned stack: missing and damaged voxels filled from aligned neighbours,
contrast normalised section by section with defects left out of the statistics.

Filling (`fill_from_neighbours`): a bad voxel takes the linear interpolation along z between
the nearest good voxels above and below it at the same place (the nearest one at the ends of
the stack); `fillable` says which bad voxels have a good one in their column to be filled
from. Contrast (`normalise_section`): either a linear stretch that puts the good pixels'
1st and 99th percentiles where the stack's are (`linear`, keeps the image's look for the
affinity network), or mask-aware CLAHE (`clahe`): bad pixels are set to the good pixels'
median before scikit-image's adaptive equalisation, so they add nothing but a flat spot to
the local histograms. Either way bad pixels come out at the good pixels' median grey: black
borders would weigh on the statistics the network's input is normalised by (each section's
mean and spread over all its pixels, `sections`), and no decision is taken from them anyway.
Filled pixels are stretched with the rest but left out of the percentiles (`ignore`): a
section's contrast comes from the tissue it shows, not from what was guessed for it.
"""

from __future__ import annotations

import numpy as np
from skimage.exposure import equalize_adapthist

CONTRAST_MODES = ("linear", "clahe", "none")


def _nearest_good(bad: np.ndarray, reverse: bool) -> np.ndarray:
    """Per voxel, the index along z of the nearest good voxel at or before it (after it with
    `reverse`); -1 where none."""
    nz = bad.shape[0]
    idx = np.where(~bad, np.arange(nz)[:, None, None], -1)
    if reverse:
        idx = np.where(~bad, np.arange(nz)[:, None, None], nz)
        return np.minimum.accumulate(idx[::-1], axis=0)[::-1]
    return np.maximum.accumulate(idx, axis=0)


def fill_from_neighbours(volume: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """`volume` (z, y, x) with every `bad` voxel replaced from the good voxels above and below
    it (linear in z); places with no good voxel at all keep their value."""
    nz = volume.shape[0]
    below = _nearest_good(bad, False)
    above = _nearest_good(bad, True)
    has_below, has_above = below >= 0, above < nz
    b = np.clip(below, 0, nz - 1)
    a = np.clip(above, 0, nz - 1)
    vb = np.take_along_axis(volume, b, axis=0).astype(np.float32)
    va = np.take_along_axis(volume, a, axis=0).astype(np.float32)
    z = np.arange(nz)[:, None, None].astype(np.float32)
    t = np.where(has_below & has_above, (z - b) / np.maximum(a - b, 1), 0.0)
    both = vb + t * (va - vb)
    value = np.where(has_below & has_above, both, np.where(has_below, vb, va))
    out = volume.astype(np.float32).copy()
    fix = fillable(bad)
    out[fix] = value[fix]
    return out.astype(volume.dtype)


def fillable(bad: np.ndarray) -> np.ndarray:
    """The `bad` voxels (z, y, x) that `fill_from_neighbours` fills: those with a good voxel
    somewhere in their column."""
    return bad & (~bad).any(axis=0, keepdims=True)


def stack_percentiles(sections: list[np.ndarray], masks: list[np.ndarray]) -> tuple[float, float]:
    """Median over sections of the good pixels' 1st and 99th percentiles."""
    lo, hi = [], []
    for s, m in zip(sections, masks, strict=True):
        v = s[~m]
        if v.size >= 64:
            p1, p99 = np.percentile(v, [1, 99])
            lo.append(p1)
            hi.append(p99)
    if not lo:
        return 0.0, 1.0
    return float(np.median(lo)), float(np.median(hi))


def normalise_section(image: np.ndarray, bad: np.ndarray, mode: str = "linear",
                      target: tuple[float, float] = (0.05, 0.95),
                      ignore: np.ndarray | None = None) -> np.ndarray:
    """One section as uint8 with its contrast normalised from its good pixels only: `bad`
    pixels come out at the good pixels' median grey, `ignore`d ones (filled) are stretched
    with the rest but add nothing to the statistics (all of them when nothing else is left)."""
    if mode not in CONTRAST_MODES:
        raise ValueError(f"contrast mode must be one of {', '.join(CONTRAST_MODES)}, "
                         f"got {mode!r}")
    img = image.astype(np.float64)
    good = ~bad
    stats = good & ~ignore if ignore is not None else good
    if stats.sum() < 64:
        stats = good
    if mode == "none" or stats.sum() < 64:
        return np.clip(img * 255.0, 0, 255).astype(np.uint8)
    p1, p99 = np.percentile(img[stats], [1, 99])
    scaled = target[0] + (img - p1) * (target[1] - target[0]) / max(p99 - p1, 1e-6)
    x = np.clip(scaled, 0, 1)
    x[bad] = float(np.median(x[stats]))
    if mode == "clahe":
        kernel = max(min(image.shape) // 4, 8)
        x = equalize_adapthist(x, kernel_size=kernel, clip_limit=0.01)
        x[bad] = float(np.median(x[stats]))
    return np.clip(x * 255.0, 0, 255).astype(np.uint8)
