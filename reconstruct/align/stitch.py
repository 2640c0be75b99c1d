"""Stitching: a section's grid of overlapping tiles -> one section image.

1. Flat field: the microscope's vignetting, estimated as the smoothed mean of many tiles
   (`flat_field`), divided out.
2. Offsets from the overlaps: each overlap between grid neighbours is cut into a few patches,
   each registered by phase cross-correlation (scikit-image) and checked by the normalised
   correlation of the registered pixels; each accepted patch gives one point correspondence.
3. A global least-squares fit of every tile's position and (small) rotation to all
   correspondences at once (rigid per tile, linearised in the angle; Huber-weighted, so
   matches that disagree by a pixel or two all count and false ones fade: `robust_lstsq`);
   a tile that matched nothing stays at its nominal place, is reported, and its area is left
   out when it has neighbours to cover it.
4. Intensities: per-tile gain and offset fitted by least squares so that overlaps agree.
5. Blending: each output pixel is the feathered mean of the tiles that cover it (weights grow
   with distance from a tile's edge); pixels no tile covers are marked missing.

Tile positions are the tile's top-left corner in the section; a tile pixel u lies at
`origin + centre + R(theta) (u - centre)`, as in the generator (`synth.raw`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.ndimage as ndi
from skimage.registration import phase_cross_correlation

MIN_MATCH_CORRELATION = 0.5
"""A patch match counts when the registered pixels correlate at least this well."""
MAX_PATCH_DISAGREEMENT = 1.5
"""Pixels by which a patch's offset may differ from the median of its overlap's patches."""
MAX_FIT_RESIDUAL = 1.0
"""Pixels of misfit beyond which a correspondence's weight in the global fit falls (Huber):
blurred overlaps give matches that disagree by 1-2 px, and each must still count, or a tile
tied to its neighbours by them alone falls back to its nominal place."""
GROSS_FIT_RESIDUAL = 4.0
"""Pixels of misfit beyond which a correspondence is a false match and is dropped."""
ROTATION_PRIOR = 60.0
"""Weight of a tile's angle (radians) against pixels of misfit: tiles rotate by milliradians,
so a short overlap's noise must not turn into a rotation."""
_PATCHES_PER_OVERLAP = 3


@dataclass
class Layout:
    """The nominal tile grid of a section."""

    grid: tuple[int, int]
    tile_shape: tuple[int, int]
    overlap: int
    section_shape: tuple[int, int]

    def nominal_origins(self) -> np.ndarray:
        th, tw = self.tile_shape
        r = np.arange(self.grid[0])[:, None] * (th - self.overlap)
        c = np.arange(self.grid[1])[None, :] * (tw - self.overlap)
        return np.stack(np.broadcast_arrays(r, c), axis=-1).astype(np.float64)


@dataclass
class Stitched:
    """One stitched section and how it was made."""

    image: np.ndarray  # float32 (y, x), flat-field and tile-intensity corrected
    covered: np.ndarray  # bool (y, x): some tile covers the pixel
    origins: np.ndarray  # (rows, cols, 2) fitted tile origins
    rotations: np.ndarray  # (rows, cols) fitted rotations, radians
    gain: np.ndarray  # (rows, cols)
    offset: np.ndarray  # (rows, cols)
    present: np.ndarray  # (rows, cols) bool: the tile exists and holds data
    matched: np.ndarray  # (rows, cols) bool: the tile matched at least one neighbour
    warnings: list[str] = field(default_factory=list)


def flat_field(tile_sets: list[np.ndarray], sigma_frac: float = 0.12) -> np.ndarray:
    """Vignetting profile (th, tw), mean 1: the smoothed per-pixel median of all tiles that
    hold data, each scaled to mean 1 (tissue averages out over many tiles; the microscope's
    shading stays).

    `tile_sets` are (rows, cols, th, tw) arrays (sections); tiles without data (constant) are
    left out."""
    scaled = [t.astype(np.float32) / max(float(t.mean()), 1e-6)
              for tiles in tile_sets for t in tiles.reshape(-1, *tiles.shape[-2:])
              if t.std() >= 1.0]
    if len(scaled) < 4:
        return np.ones(tile_sets[0].shape[-2:], np.float32)
    prof = ndi.gaussian_filter(np.median(np.stack(scaled), axis=0), sigma_frac *
                               min(scaled[0].shape), mode="nearest")
    return (prof / prof.mean()).astype(np.float32)


def _rot(theta: float) -> np.ndarray:
    return np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])


def _pairs(grid: tuple[int, int]) -> list[tuple[tuple[int, int], tuple[int, int], int]]:
    """Grid neighbours (a, b, axis): b is right of (axis 1) or below (axis 0) a."""
    rows, cols = grid
    out = []
    for r in range(rows):
        for c in range(cols):
            if c + 1 < cols:
                out.append(((r, c), (r, c + 1), 1))
            if r + 1 < rows:
                out.append(((r, c), (r + 1, c), 0))
    return out


def _register(pa: np.ndarray, pb: np.ndarray, normalization: str | None
              ) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """Shift of patch b onto patch a (phase correlation, or plain cross-correlation for
    blurred or low-texture patches), the correlation of the registered pixels, and them."""
    shift, _, _ = phase_cross_correlation(pa - pa.mean(), pb - pb.mean(), upsample_factor=10,
                                          normalization=normalization)
    if np.any(np.abs(shift) > 0.45 * np.array(pa.shape)):
        return shift, -1.0, pa, pb
    k = np.round(shift).astype(int)
    ya, yb = max(k[0], 0), max(-k[0], 0)
    xa, xb = max(k[1], 0), max(-k[1], 0)
    h, w = pa.shape[0] - abs(k[0]), pa.shape[1] - abs(k[1])
    ra, rb = pa[ya:ya + h, xa:xa + w], pb[yb:yb + h, xb:xb + w]
    if ra.size < 64 or ra.std() < 1e-3 or rb.std() < 1e-3:
        return shift, -1.0, ra, rb
    return shift, float(np.corrcoef(ra.ravel(), rb.ravel())[0, 1]), ra, rb


def _match_overlap(a: np.ndarray, b: np.ndarray, axis: int, overlap: int
                   ) -> list[tuple[np.ndarray, np.ndarray, float, float, float, float]]:
    """Point correspondences (u_a, u_b) in an overlap, with intensity statistics (mean and std
    of a and of b over the registered pixels) for the gain fit."""
    th, tw = a.shape
    along = (tw, th)[axis]
    seg = along // _PATCHES_PER_OVERLAP
    out = []
    for i in range(_PATCHES_PER_OVERLAP):
        s0, s1 = i * seg, (i + 1) * seg if i < _PATCHES_PER_OVERLAP - 1 else along
        if axis == 1:
            pa, pb = a[s0:s1, tw - overlap:], b[s0:s1, :overlap]
            u0a, u0b = np.array([s0, tw - overlap], float), np.array([s0, 0], float)
        else:
            pa, pb = a[th - overlap:, s0:s1], b[:overlap, s0:s1]
            u0a, u0b = np.array([th - overlap, s0], float), np.array([0, s0], float)
        if pa.std() < 1e-3 or pb.std() < 1e-3:
            continue
        best = max((_register(pa, pb, norm) for norm in ("phase", None)), key=lambda t: t[1])
        shift, corr, ra, rb = best
        if corr < MIN_MATCH_CORRELATION:
            continue
        pc = (np.array(pa.shape, float) - 1) / 2
        out.append((u0a + pc, u0b + pc - shift, float(ra.mean()), float(ra.std()),
                    float(rb.mean()), float(rb.std())))
    if len(out) < 2:  # one patch alone is no evidence (borders, resin, noise match too)
        return []
    # the patches of one overlap agree up to the tiles' small rotations
    d = np.array([ub - ua for ua, ub, *_ in out])
    keep = np.abs(d - np.median(d, axis=0)).max(axis=1) < MAX_PATCH_DISAGREEMENT
    return [m for m, k in zip(out, keep, strict=True) if k] if keep.sum() >= 2 else []


def _fit_positions(layout: Layout, matches: dict[tuple[int, int, int, int], list],
                   present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least squares for every tile's origin and angle (linearised rotation about the tile
    centre), with a weak pull to the nominal grid that fixes the gauge and places tiles that
    matched nothing."""
    rows, cols = layout.grid
    n = rows * cols
    centre = (np.array(layout.tile_shape, float) - 1) / 2
    nominal = layout.nominal_origins().reshape(n, 2)
    a_rows: list[np.ndarray] = []
    b_rows: list[float] = []

    def idx(r: int, c: int) -> int:
        return r * cols + c

    for (ra, ca, rb, cb), pts in matches.items():
        ia, ib = idx(ra, ca), idx(rb, cb)
        for ua, ub, *_ in pts:
            va, vb = ua - centre, ub - centre
            jva, jvb = np.array([-va[1], va[0]]), np.array([-vb[1], vb[0]])
            for d in range(2):  # t_a + va + th_a J va = t_b + vb + th_b J vb
                row = np.zeros(3 * n)
                row[3 * ia + d], row[3 * ib + d] = 1.0, -1.0
                row[3 * ia + 2], row[3 * ib + 2] = jva[d], -jvb[d]
                a_rows.append(row)
                b_rows.append(float(vb[d] - va[d]))
    n_match = len(b_rows)
    # gauge: mean position nominal, mean angle 0 (strong); each tile weakly pulled to its
    # nominal place (decides only tiles that matched nothing)
    for d in range(3):
        row = np.zeros(3 * n)
        row[d::3] = 1.0
        a_rows.append(row)
        b_rows.append(float(nominal[:, d].sum()) if d < 2 else 0.0)
    weak = 1e-4
    for i in range(n):
        for d in range(3):
            row = np.zeros(3 * n)
            row[3 * i + d] = ROTATION_PRIOR if d == 2 else weak
            a_rows.append(row)
            b_rows.append(weak * nominal[i, d] if d < 2 else 0.0)
    a, b = np.array(a_rows), np.array(b_rows)
    sol = robust_lstsq(a, b, n_match)
    sol = sol.reshape(n, 3)
    return sol[:, :2].reshape(rows, cols, 2), sol[:, 2].reshape(rows, cols)


def _fit_intensity(layout: Layout, matches: dict[tuple[int, int, int, int], list]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per-tile gain g and offset o so that g I + o agrees across overlaps (least squares on
    log std ratios, then on means; gauge: mean log gain 0, mean offset 0)."""
    rows, cols = layout.grid
    n = rows * cols
    eq_g: list[tuple[int, int, float]] = []
    for (ra, ca, rb, cb), pts in matches.items():
        for _, _, _, sa, _, sb in pts:
            eq_g.append((ra * cols + ca, rb * cols + cb, float(np.log(sb / sa))))
    if not eq_g:
        return np.ones((rows, cols)), np.zeros((rows, cols))
    a = np.zeros((len(eq_g) + 1, n))
    b = np.zeros(len(eq_g) + 1)
    for k, (i, j, v) in enumerate(eq_g):
        a[k, i], a[k, j], b[k] = 1.0, -1.0, v
    a[-1, :] = 1.0
    gain = np.exp(np.linalg.lstsq(a, b, rcond=None)[0])
    a2 = np.zeros((len(eq_g) + 1, n))
    b2 = np.zeros(len(eq_g) + 1)
    k = 0
    for (ra, ca, rb, cb), pts in matches.items():
        i, j = ra * cols + ca, rb * cols + cb
        for _, _, ma, _, mb, _ in pts:
            a2[k, i], a2[k, j], b2[k] = 1.0, -1.0, gain[j] * mb - gain[i] * ma
            k += 1
    a2[-1, :] = 1.0
    offset = np.linalg.lstsq(a2, b2, rcond=None)[0]
    return gain.reshape(rows, cols), offset.reshape(rows, cols)


def robust_lstsq(a: np.ndarray, b: np.ndarray, n_match: int, rounds: int = 20) -> np.ndarray:
    """Minimise the Huber loss (scale `MAX_FIT_RESIDUAL`) of the first `n_match` rows of
    a x - b plus the plain squares of the others (priors), by iteratively reweighted least
    squares; rows missing by more than `GROSS_FIT_RESIDUAL` are dropped as false matches."""
    w = np.ones(len(b))
    sol = np.linalg.lstsq(a, b, rcond=None)[0]
    for _ in range(rounds):
        res = np.abs(a[:n_match] @ sol - b[:n_match])
        w_new = np.ones(len(b))
        w_new[:n_match] = np.where(res > GROSS_FIT_RESIDUAL, 0.0,
                                   MAX_FIT_RESIDUAL / np.maximum(res, MAX_FIT_RESIDUAL))
        if np.allclose(w_new, w, atol=1e-6):
            break
        w = w_new
        s = np.sqrt(w)
        sol = np.linalg.lstsq(a * s[:, None], b * s, rcond=None)[0]
    return sol


def tile_coordinates(p: np.ndarray, origin: np.ndarray, theta: float,
                     tile_shape: tuple[int, int]) -> np.ndarray:
    """Tile pixel coordinates (.., 2) of section points `p` (.., 2) for a tile placed at
    `origin` with rotation `theta` (the inverse of the tile's placement)."""
    centre = (np.array(tile_shape, float) - 1) / 2
    return centre + (p - origin - centre) @ _rot(theta)  # R^-1 = R^T, row vectors


def feather(tile_shape: tuple[int, int], u: np.ndarray, ramp: float) -> np.ndarray:
    """Blending weight of tile pixels u: rises from 0 at the tile's edge over `ramp` px;
    negative outside the tile."""
    th, tw = tile_shape
    edge = np.minimum.reduce([u[..., 0], th - 1 - u[..., 0], u[..., 1], tw - 1 - u[..., 1]])
    return np.where(edge < 0, -1.0, np.clip((edge + 1) / ramp, 0, 1))


def corrected_tiles(tiles: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """A section's uint8 tiles (rows, cols, th, tw) as float32 in [0, 1] with the vignetting
    profile `flat` divided out: what `stitch_section` matches and `blend` blends."""
    return tiles.astype(np.float32) / 255.0 / flat


def stitch_section(tiles: np.ndarray, layout: Layout, flat: np.ndarray | None = None,
                   section: int = 0) -> Stitched:
    """Stitch one section's tiles (rows, cols, th, tw); `flat` is the vignetting profile."""
    rows, cols = layout.grid
    if tiles.shape[:2] != (rows, cols) or tiles.shape[2:] != tuple(layout.tile_shape):
        raise ValueError(f"section {section}: tiles have shape {tiles.shape[:2]} of "
                         f"{tiles.shape[2:]}, expected {layout.grid} of {layout.tile_shape}")
    flat = np.ones(layout.tile_shape, np.float32) if flat is None else flat
    corrected = corrected_tiles(tiles, flat)
    present = tiles.reshape(rows, cols, -1).std(axis=-1) > 0.5
    matches: dict[tuple[int, int, int, int], list] = {}
    for (ra, ca), (rb, cb), axis in _pairs(layout.grid):
        if present[ra, ca] and present[rb, cb]:
            pts = _match_overlap(corrected[ra, ca], corrected[rb, cb], axis, layout.overlap)
            if pts:
                matches[(ra, ca, rb, cb)] = pts
    matched = np.zeros((rows, cols), bool)
    for ra, ca, rb, cb in matches:
        matched[ra, ca] = matched[rb, cb] = True
    origins, rotations = _fit_positions(layout, matches, present)
    gain, offset = _fit_intensity(layout, matches)
    warnings = []
    use = present.copy()
    if rows * cols > 1 and not matched.any():
        warnings.append(f"section {section}: no tile matched any neighbour (no tissue?); "
                        f"tiles left at their nominal places")
    elif rows * cols > 1:
        for r, c in zip(*np.nonzero(present & ~matched), strict=True):
            warnings.append(f"section {section}, tile (row {r}, col {c}): overlaps no "
                            f"neighbour's image; left out, its area masked")
            use[r, c] = False
    for r, c in zip(*np.nonzero(~present), strict=True):
        warnings.append(f"section {section}, tile (row {r}, col {c}): missing or empty; "
                        f"its area masked")
    image, covered = blend(corrected, use, origins, rotations, gain, offset, layout)
    return Stitched(image, covered, origins, rotations, gain, offset, present, matched, warnings)


def blend(corrected: np.ndarray, use: np.ndarray, origins: np.ndarray, rotations: np.ndarray,
          gain: np.ndarray, offset: np.ndarray, layout: Layout, points: np.ndarray | None = None,
          order: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Feathered mean of the placed tiles over the section; (image, covered).

    `points` (y, x, 2): section positions to sample (default: every pixel of the section),
    so that an aligned section can be read from the tiles through its map in one
    resampling; `order`: the spline order of the tiles' interpolation (1 bilinear, 3 cubic:
    each bilinear resampling at sub-pixel offsets smooths away fine structure)."""
    ny, nx = layout.section_shape
    p = np.moveaxis(np.mgrid[0:ny, 0:nx], 0, -1).astype(np.float64) if points is None \
        else np.asarray(points, np.float64)
    acc = np.zeros(p.shape[:-1])
    wsum = np.zeros(p.shape[:-1])
    ramp = max(layout.overlap / 2, 1.0)
    rows, cols = layout.grid
    for r in range(rows):
        for c in range(cols):
            if not use[r, c]:
                continue
            u = tile_coordinates(p, origins[r, c], rotations[r, c], layout.tile_shape)
            w = feather(layout.tile_shape, u, ramp)
            inside = w >= 0
            w = np.where(inside, w + 1e-3, 0.0)
            v = ndi.map_coordinates(corrected[r, c], [u[..., 0], u[..., 1]], order=order,
                                    mode="nearest")
            acc += w * (gain[r, c] * v + offset[r, c])
            wsum += w
    covered = wsum > 0
    image = np.where(covered, acc / np.maximum(wsum, 1e-12), 0.0).astype(np.float32)
    return image, covered
