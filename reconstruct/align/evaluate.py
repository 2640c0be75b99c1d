"""The front end measured against the generator's truth (`synth.raw`).

- Seams: over the pixels two placed tiles share, how far apart the true section positions are
  that the two tiles show there (0 for a perfect stitch; independent of the stitch's frame).
- Alignment: for every aligned pixel p of section z the truth gives the undeformed tissue
  position q_z(p) it shows (stitched position -> section position through the true tile
  transforms -> tissue through the true deformation). A perfect stack shows one place in every
  section: the strict residual is q_z(p) minus the mean over sections of q(p), on valid tissue
  (sections without a section-wide defect, away from line defects by `margin` px, inside the
  imaged tissue, read from covered pixels only). The residual up to smooth motion along z
  subtracts a Gaussian-weighted mean over nearby sections instead (`alignment_residual`).
- Defects: recall of the true defect area and precision of the found area, in the stitched
  frame, a found line-defect pixel counting as right within `tolerance` px of a true one and a
  true one as found within `tolerance` px of a found one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.ndimage as ndi

from connectome_query.reconstruct.align.masks import LINE_DEFECTS, SECTION_DEFECTS, Defect, has
from connectome_query.reconstruct.align.stitch import Layout, Stitched, feather, tile_coordinates
from connectome_query.reconstruct.synth.raw import RawPlan, tile_to_section


def stitched_sources(st: Stitched, layout: Layout, plan: RawPlan, z: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(true section position of every stitched pixel (y, x, 2) as blended, seam disagreement
    per pixel (y, x): largest distance between the true positions of the tiles that cover
    it, NaN where fewer than two do)."""
    ny, nx = layout.section_shape
    p = np.moveaxis(np.mgrid[0:ny, 0:nx], 0, -1).astype(np.float64)
    rows, cols = layout.grid
    acc = np.zeros((ny, nx, 2))
    wsum = np.zeros((ny, nx))
    lo = np.full((ny, nx, 2), np.inf)
    hi = np.full((ny, nx, 2), -np.inf)
    count = np.zeros((ny, nx), int)
    used = st.present & (st.matched if st.matched.any() else st.present)
    for r in range(rows):
        for c in range(cols):
            if not used[r, c]:
                continue
            u = tile_coordinates(p, st.origins[r, c], st.rotations[r, c], layout.tile_shape)
            w = feather(layout.tile_shape, u, max(layout.overlap / 2, 1.0))
            inside = w >= 0
            s = tile_to_section(plan, z, r, c, u)
            acc += np.where(inside, w + 1e-3, 0)[..., None] * s
            wsum += np.where(inside, w + 1e-3, 0)
            lo = np.where(inside[..., None], np.minimum(lo, s), lo)
            hi = np.where(inside[..., None], np.maximum(hi, s), hi)
            count += inside
    src = acc / np.maximum(wsum, 1e-12)[..., None]
    seam = np.where(count >= 2, np.linalg.norm(hi - lo, axis=-1), np.nan)
    return src, seam


def seam_error(seams: list[np.ndarray]) -> dict[str, float]:
    """RMS, 99th percentile and largest seam disagreement (px) over all shared pixels."""
    v = np.concatenate([s[np.isfinite(s)] for s in seams])
    if not v.size:
        return {"rms": float("nan"), "p99": float("nan"), "max": float("nan")}
    return {"rms": float(np.sqrt(np.mean(v**2))), "p99": float(np.percentile(v, 99)),
            "max": float(v.max())}


def tissue_positions(coords: np.ndarray, src: np.ndarray, deformation: np.ndarray
                     ) -> np.ndarray:
    """(y, x, 2) undeformed tissue position shown by each aligned pixel, from its stitched
    source coordinates (2, y, x), the stitched section's true sources (y, x, 2) and the true
    deformation (2, y, x)."""
    s = np.stack([ndi.map_coordinates(src[..., k], coords, order=1, mode="nearest")
                  for k in range(2)], axis=-1)
    d = np.stack([ndi.map_coordinates(deformation[k], [s[..., 0], s[..., 1]], order=1,
                                      mode="nearest") for k in range(2)], axis=-1)
    return s + d


def valid_tissue(coords: np.ndarray, src: np.ndarray, true_mask: np.ndarray,
                 covered: np.ndarray, q: np.ndarray, margin: int) -> np.ndarray:
    """Aligned pixels whose truth is measurable: stitched from tiles, inside the section,
    shown tissue inside the volume, at least `margin` px (section frame) from a line defect."""
    ny, nx = true_mask.shape
    s = np.stack([ndi.map_coordinates(src[..., k], coords, order=1, mode="nearest")
                  for k in range(2)], axis=-1)
    near = ndi.binary_dilation(has(true_mask, LINE_DEFECTS), iterations=margin) \
        if margin else has(true_mask, LINE_DEFECTS)
    si = np.clip(np.round(s).astype(int), 0, [ny - 1, nx - 1])
    # every pixel the bilinear look-up of the sources reads must be covered: the sources of
    # uncovered pixels are 0, and a blend with them is no position at all
    cov = ndi.map_coordinates(covered.astype(np.float32), coords, order=1,
                              mode="constant") >= 1 - 1e-4
    inside = ((q >= margin) & (q <= np.array([ny, nx]) - 1 - margin)).all(axis=-1)
    inside &= ((s >= 0) & (s <= np.array([ny, nx]) - 1)).all(axis=-1)
    return cov & inside & ~near[si[..., 0], si[..., 1]]


@dataclass
class Residual:
    rms: float
    p99: float
    max: float
    pixels: int


def alignment_residual(q: np.ndarray, valid: np.ndarray, trend_sections: float = 0.0
                       ) -> Residual:
    """Residual of tissue positions q (z, y, x, 2) where `valid` (z, y, x).

    Strict (`trend_sections` 0): against their per-pixel mean over the valid sections, so
    any motion along z counts. Up to smooth motion along z (`trend_sections` s > 0): against
    their per-pixel Gaussian-weighted mean over the valid sections, sd s sections. Tissue
    that runs obliquely and a drift of the stack along z look alike to any aligner that
    aligns content; this measure forgives motion that is smooth over about s sections and
    still sees each section's own error (a Gaussian of sd 2 weighs a section's own position
    at 0.2 of its trend)."""
    w = valid.astype(np.float64)
    nz = q.shape[0]
    if trend_sections > 0:
        z = np.arange(nz, dtype=np.float64)
        kernel = np.exp(-0.5 * ((z[:, None] - z[None]) / trend_sections) ** 2)
    else:
        kernel = np.ones((nz, nz))
    num = np.einsum("ab,byxc->ayxc", kernel, q * w[..., None])
    den = np.einsum("ab,byx->ayx", kernel, w)
    trend = num / np.maximum(den, 1e-12)[..., None]
    r = np.linalg.norm(q - trend, axis=-1)
    use = valid & (w.sum(axis=0) >= 2)[None]
    v = r[use]
    if not v.size:
        return Residual(float("nan"), float("nan"), float("nan"), 0)
    return Residual(float(np.sqrt(np.mean(v**2))), float(np.percentile(v, 99)),
                    float(v.max()), int(v.size))


def truth_in_stitched_frame(true_mask: np.ndarray, src: np.ndarray) -> np.ndarray:
    """A section-frame mask seen in the stitched frame (nearest pixel)."""
    ny, nx = true_mask.shape
    si = np.clip(np.round(src).astype(int), 0, [ny - 1, nx - 1])
    return true_mask[si[..., 0], si[..., 1]]


def defect_scores(found: np.ndarray, truth: np.ndarray, covered: np.ndarray,
                  flags: Defect | int, tolerance: int = 0) -> dict[str, float]:
    """Recall and precision of `flags` (stacks of masks (z, y, x) in one frame, over covered
    pixels), with a tolerance in px per section."""
    f = has(found, flags) & covered
    t = has(truth, flags) & covered
    if tolerance:
        st = np.zeros((1, 3, 3), bool)
        st[0] = True
        f_near = ndi.binary_dilation(f, st, iterations=tolerance)
        t_near = ndi.binary_dilation(t, st, iterations=tolerance)
    else:
        f_near, t_near = f, t
    recall = float((t & f_near).sum() / t.sum()) if t.any() else float("nan")
    precision = float((f & t_near).sum() / f.sum()) if f.any() else float("nan")
    return {"recall": recall, "precision": precision, "true_px": int(t.sum()),
            "found_px": int(f.sum())}


def defect_report(found: np.ndarray, truth: np.ndarray, covered: np.ndarray,
                  tolerance: int = 2) -> dict[str, dict[str, float]]:
    """Scores for all defects, line defects (folds, cracks; with `tolerance`) and
    section-wide ones (blur, missing)."""
    return {"all": defect_scores(found, truth, covered, LINE_DEFECTS | SECTION_DEFECTS,
                                 tolerance),
            "lines": defect_scores(found, truth, covered, LINE_DEFECTS, tolerance),
            "sections": defect_scores(found, truth, covered, SECTION_DEFECTS)}
