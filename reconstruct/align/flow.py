"""Flow fields between neighbouring sections: patchwise cross-correlation at a stride.

For every node of a grid (`stride` px apart, from pixel 0) a patch of the fixed section is
correlated with a patch of the moving section (zero mean, Hann window, normalised
cross-correlation by FFT, all patches of a section at once in JAX: one code path on CPU and
GPU); the peak, refined to a fraction of a pixel by a parabola through its neighbours, is the
node's displacement f: moving(p + f(p)) shows what fixed(p) shows. Both sections are
reduced to their structure first (`structure`). Coarse to fine: a first pass
on both sections downsampled by 2 gives each patch a prior that the full-resolution pass
searches around, so shifts of tens of pixels are found with small patches.

Outliers are dropped (NaN): patches over masked (defect) pixels, weak or ambiguous peaks (peak
correlation, ratio to the second peak) and flows that disagree with their neighbours' median.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import scipy.ndimage as ndi

MIN_PEAK = 0.2
"""Smallest normalised correlation of a peak that counts."""
MIN_PEAK_RATIO = 1.2
"""A peak must stand this much above the best peak away from it."""
MAX_NEIGHBOUR_DISAGREEMENT = 3.0
"""Pixels by which a node's flow may differ from the median of its 3x3 neighbours."""
MAX_MASKED_FRACTION = 0.25
PEAK_RADIUS = 6
"""The second peak is sought this far (px) from the first."""


@dataclass
class Flow:
    """Displacements at grid nodes: moving(p + yx) ~ fixed(p); NaN where unknown."""

    yx: np.ndarray  # (gy, gx, 2) float32
    peak: np.ndarray  # (gy, gx) normalised correlation at the peak (0 where not measured)
    stride: int
    shift: np.ndarray = field(default_factory=lambda: np.zeros(2))  # whole-section shift

    @property
    def valid(self) -> np.ndarray:
        return np.isfinite(self.yx).all(axis=-1)


def grid_shape(shape: tuple[int, int], stride: int) -> tuple[int, int]:
    """Nodes at 0, stride, 2 stride, ... covering every pixel of a section."""
    return tuple(int(np.ceil((s - 1) / stride)) + 1 for s in shape)  # type: ignore[return-value]


def _window(patch: int) -> np.ndarray:
    w = np.hanning(patch + 2)[1:-1]
    return np.outer(w, w).astype(np.float32)


@partial(jax.jit, static_argnames=("max_shift",))
def xcorr_peaks(fixed: jax.Array, moving: jax.Array, window: jax.Array,
                max_shift: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Batched normalised cross-correlation of patch pairs (n, P, P): (shift (n, 2) with
    moving(x + shift) ~ fixed(x), peak value (n,), peak ratio (n,))."""
    n, p, _ = fixed.shape

    def prep(a: jax.Array) -> jax.Array:
        a = a - a.mean(axis=(1, 2), keepdims=True)
        a = a * window
        return a / jnp.maximum(jnp.sqrt((a * a).sum(axis=(1, 2), keepdims=True)), 1e-6)

    f, m = prep(fixed), prep(moving)
    c = jnp.fft.irfft2(jnp.conj(jnp.fft.rfft2(f)) * jnp.fft.rfft2(m), s=(p, p))
    c = jnp.fft.fftshift(c, axes=(1, 2))  # shift 0 at index p // 2
    r = jnp.arange(p) - p // 2
    inside = (jnp.abs(r)[:, None] <= max_shift) & (jnp.abs(r)[None, :] <= max_shift)
    c = jnp.where(inside[None], c, -1.0)
    flat = c.reshape(n, -1)
    k = jnp.argmax(flat, axis=1)
    ky, kx = k // p, k % p
    peak = flat[jnp.arange(n), k]
    yy, xx = jnp.arange(p)[None, :, None], jnp.arange(p)[None, None, :]
    near = ((jnp.abs(yy - ky[:, None, None]) <= PEAK_RADIUS)
            & (jnp.abs(xx - kx[:, None, None]) <= PEAK_RADIUS))
    second = jnp.where(near, -1.0, c).reshape(n, -1).max(axis=1)
    ratio = peak / jnp.maximum(second, 1e-3)

    def sub(a: jax.Array, b: jax.Array, cc: jax.Array) -> jax.Array:
        den = a - 2 * cc + b
        return jnp.where(jnp.abs(den) > 1e-9, 0.5 * (a - b) / den, 0.0).clip(-0.5, 0.5)

    idx = jnp.arange(n)
    cy = jnp.clip(ky, 1, p - 2)
    cx = jnp.clip(kx, 1, p - 2)
    dy = sub(c[idx, cy - 1, kx], c[idx, cy + 1, kx], peak)
    dx = sub(c[idx, ky, cx - 1], c[idx, ky, cx + 1], peak)
    shift = jnp.stack([ky - p // 2 + dy, kx - p // 2 + dx], axis=1)
    return shift, peak, ratio


def _patches(img: np.ndarray, centres: np.ndarray, patch: int) -> np.ndarray:
    """(n, patch, patch) patches centred on integer `centres` (n, 2); outside the image the
    nearest edge pixel."""
    half = patch // 2
    ar = np.arange(patch) - half
    ys = np.clip(centres[:, 0, None] + ar[None], 0, img.shape[0] - 1)
    xs = np.clip(centres[:, 1, None] + ar[None], 0, img.shape[1] - 1)
    return img[ys[:, :, None], xs[:, None, :]]


def _masked_fraction(mask: np.ndarray, centres: np.ndarray, patch: int) -> np.ndarray:
    """Fraction of each patch's pixels inside the section that are masked. The part of a
    patch beyond the section is not counted: the `outside` rule of `_one_level` decides
    about it, and counting it as masked dropped every node within a patch of the edge as
    soon as one pixel near the border was (an uncovered stitched border is)."""
    integral = np.pad(mask.astype(np.float64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    half = patch // 2
    y0 = np.clip(centres[:, 0] - half, 0, mask.shape[0])
    y1 = np.clip(centres[:, 0] + half, 0, mask.shape[0])
    x0 = np.clip(centres[:, 1] - half, 0, mask.shape[1])
    x1 = np.clip(centres[:, 1] + half, 0, mask.shape[1])
    s = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    return np.asarray(s / np.maximum((y1 - y0) * (x1 - x0), 1))


def nan_median_filter(yx: np.ndarray) -> np.ndarray:
    """3x3 median of each component, ignoring NaN (NaN where all nine are NaN)."""
    gy, gx, _ = yx.shape
    pad = np.pad(yx, ((1, 1), (1, 1), (0, 0)), constant_values=np.nan)
    stack = np.stack([pad[i:i + gy, j:j + gx] for i in range(3) for j in range(3)])
    with warnings.catch_warnings():  # all-NaN neighbourhoods give NaN, as they should
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.asarray(np.nanmedian(stack, axis=0))


def fill_nan(yx: np.ndarray) -> np.ndarray:
    """Unknown nodes take the value of the nearest known node (zeros when none is known)."""
    valid = np.isfinite(yx).all(axis=-1)
    if not valid.any():
        return np.zeros_like(yx)
    if valid.all():
        return yx.copy()
    idx = ndi.distance_transform_edt(~valid, return_distances=False, return_indices=True)
    return yx[idx[0], idx[1]]


def _one_level(fixed: np.ndarray, moving: np.ndarray, stride: int, patch: int,
               max_shift: int, prior: np.ndarray | None, mask: np.ndarray | None) -> Flow:
    gy, gx = grid_shape(fixed.shape, stride)
    nodes = np.moveaxis(np.mgrid[0:gy, 0:gx], 0, -1).reshape(-1, 2) * stride
    base = np.zeros_like(nodes) if prior is None else np.round(prior.reshape(-1, 2)).astype(int)
    fp = _patches(fixed.astype(np.float32), nodes, patch)
    mp = _patches(moving.astype(np.float32), nodes + base, patch)
    shift, peak, ratio = (np.asarray(a) for a in xcorr_peaks(
        jnp.asarray(fp), jnp.asarray(mp), jnp.asarray(_window(patch)), max_shift))
    yx = (shift + base).astype(np.float32)
    bad = (peak < MIN_PEAK) | (ratio < MIN_PEAK_RATIO)
    bad |= (np.abs(shift) >= max_shift - 0.5).any(axis=1)
    # patches that reach outside the fixed section see padding, not tissue: a node keeps its
    # flow if at least a quarter patch of pixels lies on either side of it (the same rule at
    # both edges: node `shape - patch // 4` has that many pixels after it, counting itself)
    outside = ((nodes < patch // 4) | (nodes > np.array(fixed.shape) - patch // 4)).any(1)
    bad |= outside
    if mask is not None:
        bad |= _masked_fraction(mask, nodes, patch) > MAX_MASKED_FRACTION
    yx[bad] = np.nan
    yx = yx.reshape(gy, gx, 2)
    med = nan_median_filter(yx)
    with np.errstate(invalid="ignore"):
        off = np.abs(yx - med).max(axis=-1) > MAX_NEIGHBOUR_DISAGREEMENT
    yx[off] = np.nan
    return Flow(yx, np.where(bad, 0.0, peak).reshape(gy, gx).astype(np.float32), stride)


def section_flow(fixed: np.ndarray, moving: np.ndarray, stride: int = 32, patch: int = 128,
                 max_shift: int = 20, mask: np.ndarray | None = None,
                 coarse: bool = True, blur: float = 0.0) -> Flow:
    """Flow from `fixed` to `moving` (2-D float images of one shape) at grid nodes `stride`
    apart; `mask` (bool, fixed's frame) marks pixels no flow may come from; `blur` (px) is
    applied to both sections first (to match a blurred partner)."""
    if fixed.shape != moving.shape:
        raise ValueError(f"sections differ in shape: {fixed.shape} and {moving.shape}")
    gy, gx = grid_shape(fixed.shape, stride)
    bf, bm = structure(fixed, mask, blur), structure(moving, mask, blur)
    g = global_shift(bf, bm, mask)
    prior = np.broadcast_to(g, (gy, gx, 2)).astype(np.float64)
    if coarse:
        small = [ndi.zoom(a, 0.5, order=1) for a in (bf, bm)]
        smask = None if mask is None else ndi.zoom(mask.astype(np.uint8), 0.5, order=0) > 0
        sgy, sgx = grid_shape(small[0].shape, stride)
        c = _one_level(small[0], small[1], stride, patch, max_shift,
                       np.broadcast_to(g / 2, (sgy, sgx, 2)), smask)
        cf = np.where(np.isfinite(c.yx), c.yx, np.nan)
        cf = fill_nan(cf) * 2.0 if np.isfinite(cf).any() else np.broadcast_to(
            g, (sgy, sgx, 2))
        yy, xx = np.mgrid[0:gy, 0:gx] / 2.0  # fine node i sits at coarse node i / 2
        prior = np.stack([ndi.map_coordinates(cf[..., k], [np.minimum(yy, sgy - 1),
                                                            np.minimum(xx, sgx - 1)],
                                              order=1, mode="nearest") for k in range(2)], -1)
    out = _one_level(bf, bm, stride, patch, max(max_shift // 2, 6) if coarse else max_shift,
                     prior, mask)
    out.shift = g
    return out


def global_shift(fixed: np.ndarray, moving: np.ndarray, mask: np.ndarray | None = None,
                 max_shift: int = 64) -> np.ndarray:
    """The whole sections' translation g (moving(p + g) ~ fixed(p)), at most `max_shift` px:
    the cross-correlation of the whole sections (zero mean over unmasked pixels, masked ones
    0, a soft window against the edges); it centres every patch's search."""
    def prep(a: np.ndarray) -> np.ndarray:
        a = a.astype(np.float64)
        keep = np.ones(a.shape, bool) if mask is None else ~mask
        if not keep.any():
            return np.zeros_like(a)
        return np.where(keep, a - a[keep].mean(), 0.0)

    f, m = prep(fixed), prep(moving)
    win = np.outer(np.hanning(f.shape[0] + 2)[1:-1], np.hanning(f.shape[1] + 2)[1:-1]) ** 0.3
    c = np.fft.irfft2(np.conj(np.fft.rfft2(f * win)) * np.fft.rfft2(m * win), s=f.shape)
    c = np.fft.fftshift(c)
    centre = np.array(f.shape) // 2
    r = [np.abs(np.arange(n) - centre[k]) for k, n in enumerate(f.shape)]
    c = np.where((r[0][:, None] <= max_shift) & (r[1][None, :] <= max_shift), c, -np.inf)
    k = np.array(np.unravel_index(int(np.argmax(c)), c.shape))
    return (k - centre).astype(np.float64)


STRUCTURE_SIGMAS = (1.0, 2.0, 12.0)
"""Gradient scale, smoothing of its magnitude, and the scale of the slow part removed (px)."""


def structure(image: np.ndarray, mask: np.ndarray | None = None, blur: float = 0.0
              ) -> np.ndarray:
    """What the flow correlates: the smoothed gradient magnitude with its slow part removed.
    Membranes and cell outlines persist over sections whatever their polarity, where the
    intensity of fine texture does not; masked pixels (and 3 px around them) are set to 0."""
    img = image.astype(np.float32)
    if blur > 0:
        img = ndi.gaussian_filter(img, blur)
    s1, s2, s3 = STRUCTURE_SIGMAS
    g = ndi.gaussian_filter(ndi.gaussian_gradient_magnitude(img, s1), s2)
    if mask is not None and mask.any():
        near = ndi.binary_dilation(mask, iterations=3)
        keep = (~near).astype(np.float32)
        # the slow part from unmasked pixels only (normalised convolution)
        slow = ndi.gaussian_filter(g * keep, s3) / np.maximum(ndi.gaussian_filter(keep, s3), 1e-3)
        return np.where(near, 0.0, g - slow).astype(np.float32)
    return np.asarray(g - ndi.gaussian_filter(g, s3), np.float32)
