"""Finding what is wrong with sections: quality per section, folds and cracks per pixel.

Per section (`section_quality`), over the pixels the tiles cover: contrast (standard deviation
of a band-pass, sigma 1-4 px: structure, not pixel noise nor shading) and sharpness (variance
of a band-pass, sigma 0.7-2 px, over that of the next band, 2-8 px, so neither contrast drift
nor pixel noise reads as focus). Judged against the stack's medians
(`classify_sections`): a section with almost no contrast holds no tissue (MISSING); one much
less sharp than its stack is out of focus (BLUR).

Per pixel (`line_defects`): the section smoothed and put on a robust scale (median 0, the
5-95 percentile spread 1); a fold is a long band far darker than membranes or clefts get, a
crack a long band brighter than tissue (empty resin). Candidate components must be large, long and
narrow (small dark blobs are clefts; thin dark lines are membranes and vanish in the
smoothing; wide bright areas are somata). Sections with a section-wide flag get no line
flags (`line_defects` is not asked for them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.ndimage as ndi
from skimage.measure import regionprops

from connectome_query.reconstruct.align.masks import Defect

FOLD_LEVEL = -0.9
CRACK_LEVEL = 0.9
MIN_LINE_LENGTH = 120.0
"""Major axis (px) a fold or crack component must reach. Folds and cracks run across a
section for tens of micrometres; bright or dark parts of cells that pass the width test
reach 40-85 px (at 16 nm), the generator's folds and cracks 200-380 px in 192-256 px
sections."""
MIN_LINE_AREA = 120
MAX_LINE_WIDTH = 12.0
"""Mean width (area over length, px) above which a dark or bright component is tissue (a
soma, a gap between cells), not a fold or crack."""
MISSING_CONTRAST = 0.3
"""A section whose contrast is below this fraction of the stack's median holds no tissue."""
BLUR_SHARPNESS = 0.45
"""A section whose sharpness is below this fraction of the stack's median is blurred."""


@dataclass
class Quality:
    """One section's numbers (nan when nothing is covered)."""

    contrast: float
    sharpness: float
    mean: float


def section_quality(image: np.ndarray, covered: np.ndarray) -> Quality:
    """Contrast, sharpness and mean intensity over the covered pixels."""
    if covered.sum() < 64:
        return Quality(float("nan"), float("nan"), float("nan"))
    img = image.astype(np.float64)
    inner = ndi.binary_erosion(covered, iterations=3)
    if inner.sum() < 64:
        inner = covered
    structure = ndi.gaussian_filter(img, 1.0) - ndi.gaussian_filter(img, 4.0)
    contrast = float(structure[inner].std())
    fine = ndi.gaussian_filter(img, 0.7) - ndi.gaussian_filter(img, 2.0)
    coarse = ndi.gaussian_filter(img, 2.0) - ndi.gaussian_filter(img, 8.0)
    sharp = float(fine[inner].var() / max(coarse[inner].var(), 1e-12))
    return Quality(contrast, sharp, float(img[inner].mean()))


def classify_sections(qualities: list[Quality]) -> np.ndarray:
    """Section-wide flags (uint8 per section) from the stack's qualities."""
    contrast = np.array([q.contrast for q in qualities])
    sharp = np.array([q.sharpness for q in qualities])
    flags = np.zeros(len(qualities), np.uint8)
    flags[~np.isfinite(contrast)] |= np.uint8(Defect.MISSING)
    finite = np.isfinite(contrast)
    if not finite.any():
        return flags
    c_med = float(np.median(contrast[finite]))
    missing = finite & (contrast < MISSING_CONTRAST * c_med)
    flags[missing] |= np.uint8(Defect.MISSING)
    ok = finite & ~missing
    if ok.any():
        s_med = float(np.median(sharp[ok]))
        flags[ok & (sharp < BLUR_SHARPNESS * s_med)] |= np.uint8(Defect.BLUR)
    return flags


def robust_scale(image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The image with median 0 and 5-95 percentile spread 1 over `valid` pixels."""
    v = image[valid]
    if v.size < 16:
        return np.zeros_like(image, dtype=np.float32)
    p5, p50, p95 = np.percentile(v, [5, 50, 95])
    return ((image - p50) / max(p95 - p5, 1e-6)).astype(np.float32)


def _long_components(candidate: np.ndarray) -> np.ndarray:
    lab, n = ndi.label(candidate)
    keep = np.zeros(n + 1, bool)
    for r in regionprops(lab):
        length = r.axis_major_length
        if (r.area >= MIN_LINE_AREA and length >= MIN_LINE_LENGTH
                and r.area / length <= MAX_LINE_WIDTH):
            keep[r.label] = True
    return keep[lab]


def line_defects(image: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """FOLD and CRACK flags (uint8 (y, x)) of one stitched section."""
    inner = ndi.binary_erosion(covered, iterations=2) if covered.any() else covered
    g = robust_scale(ndi.gaussian_filter(image.astype(np.float32), 1.5), inner)
    out = np.zeros(image.shape, np.uint8)
    for level, flag, below in ((FOLD_LEVEL, Defect.FOLD, True),
                               (CRACK_LEVEL, Defect.CRACK, False)):
        cand = ((g < level) if below else (g > level)) & inner
        core = _long_components(ndi.binary_opening(cand, iterations=1))
        if core.any():  # grow to the band's edges (half-way between band and tissue)
            edge = (g < level / 2) if below else (g > level / 2)
            core = ndi.binary_dilation(core, iterations=2, mask=edge | core)
        out[core] |= np.uint8(flag)
    return out
