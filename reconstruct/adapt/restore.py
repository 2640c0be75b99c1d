"""The restorer (JAX; no I/O): a section-wise network that maps degraded sections to clean ones
where the front end's defect flags (`align.masks`) mark them.

Blur, folds, cracks and missing tissue are local to a section, so, like the adapter's
generators, the restorer works in-plane, but it also reads the sections above and below (what
a fold or a missing section hides is there, nearly). Its inputs per section, in [-1, 1]: the
section, its two neighbours (reflected at the volume's ends), and where each of the three is
flagged: `blur` on the section (its content is there, softened) and `lost` on the section and
its neighbours (folds, cracks, missing: nothing of the tissue is there). The network is a small
U-Net (3x3 convolutions, one 2x pooling level, a skip connection) whose output is added to a
base: the section where its content is kept, the mean of its unflagged neighbours where it is
lost (no tanh: grey levels at black or white would hardly move through one). Only flagged
voxels take the restorer's output (`restore_region`); every other voxel keeps its grey level
exactly.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from connectome_query.reconstruct import weights
from connectome_query.reconstruct.adapt import model
from connectome_query.reconstruct.align.masks import LINE_DEFECTS, Defect, has

RESTORER_FORMAT = "connectome-query/restorer/1"
WIDTH = 16
CHANNELS = 6
"""Section, section above, section below, blur flag, lost flag of the section, lost flags of
the neighbours (their mean)."""
HALO = (1, 16, 16)
"""Context (z, y, x) a restored block needs: one section each way, more than the network's
in-plane reach (about 9 px)."""
BLURRED = Defect.BLUR
LOST = LINE_DEFECTS | Defect.MISSING
RESTORED = BLURRED | LOST
"""Flags the restorer repairs; NO_TISSUE (outside the imaged area) it leaves alone."""


def layers(width: int = WIDTH) -> list[weights.Layer]:
    """(in, out, kernel z, y, x) of the restorer's convolutions, in order."""
    w = width
    return [(CHANNELS, w, (1, 3, 3)), (w, w, (1, 3, 3)), (w, 2 * w, (1, 3, 3)),
            (2 * w, 2 * w, (1, 3, 3)), (3 * w, w, (1, 3, 3)), (w, 1, (1, 1, 1))]


def init(seed: int, width: int = WIDTH) -> weights.Params:
    """He-initialised weights with a zero output layer: a fresh restorer returns its base."""
    params = model.init(layers(width), np.random.default_rng([seed, 28]))
    params[-1] = (np.zeros_like(params[-1][0]), params[-1][1])
    return params


def inputs(img: Any, blur: Any, lost: Any) -> tuple[Any, Any]:
    """The network's input channels (N, z, y, x, CHANNELS) and base (N, z, y, x) of images
    (N, z + 2, y, x) in [-1, 1] with their flags (same shape, 0/1): every section but the
    first and last, each with the one above and below."""
    import jax.numpy as jnp

    sec, up, down = img[:, 1:-1], img[:, :-2], img[:, 2:]
    lup, ldown = lost[:, :-2], lost[:, 2:]
    gup, gdown = 1.0 - lup, 1.0 - ldown
    nb = (up * gup + down * gdown) / jnp.maximum(gup + gdown, 1.0)
    lost_here = lost[:, 1:-1]
    base = jnp.where(lost_here > 0, nb, sec)
    x = jnp.stack([sec, up, down, blur[:, 1:-1], lost_here, 0.5 * (lup + ldown)], axis=-1)
    return x, base


def forward(params: weights.Params, img: Any, blur: Any, lost: Any) -> Any:
    """Restored sections (N, z, y, x), about [-1, 1], of images (N, z + 2, y, x) with flags; y
    and x even. Every voxel gets the network's value (`restore_region` keeps unflagged
    ones)."""
    import jax
    import jax.numpy as jnp

    relu = jax.nn.relu
    x, base = inputs(img, blur, lost)
    h1 = relu(weights.conv3d(x, params[0]))
    h2 = relu(weights.conv3d(h1, params[1]))
    h3 = relu(weights.conv3d(model._pool(h2), params[2]))
    h4 = relu(weights.conv3d(h3, params[3]))
    up = jnp.repeat(jnp.repeat(h4, 2, axis=2), 2, axis=3)
    h5 = relu(weights.conv3d(jnp.concatenate([up, h2], axis=-1), params[4]))
    return base + weights.conv3d(h5, params[5])[..., 0]


def flag_planes(flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(blur, lost) as float32 0/1 of uint8 defect flags: blurred voxels with nothing lost,
    and voxels whose tissue is lost."""
    lost = has(flags, LOST)
    blur = has(flags, BLURRED) & ~lost
    return blur.astype(np.float32), lost.astype(np.float32)


@dataclass
class Restorer:
    """Trained restorer weights with metadata (how it was trained)."""

    params: weights.Params
    meta: dict[str, Any] = field(default_factory=dict)
    format: str = RESTORER_FORMAT


def to_arrays(r: Restorer) -> dict[str, np.ndarray]:
    return weights.to_arrays(r.format, {**r.meta, "width": int(r.meta.get("width", WIDTH))},
                             r.params)


def from_arrays(arrays: dict[str, np.ndarray]) -> Restorer:
    """Inverse of `to_arrays`; checks the format and every layer's shape."""
    meta = weights.read_format(arrays, RESTORER_FORMAT)
    return Restorer(weights.read_params(arrays, layers(int(meta.get("width", WIDTH)))), meta)


@functools.cache
def _jitted() -> Callable[..., Any]:
    import jax

    return jax.jit(forward)


def restore_region(params: weights.Params, region: np.ndarray, flags: np.ndarray
                   ) -> np.ndarray:
    """The core of a uint8 region (z, y, x) with its defect flags restored: the region less
    `HALO` on each side (the caller provides that context, reflected where the volume ends).
    Voxels without a `RESTORED` flag keep their grey level."""
    import jax.numpy as jnp

    hz, hy, hx = HALO
    nz, ny, nx = region.shape
    cz, cy, cx = nz - 2 * hz, ny - 2 * hy, nx - 2 * hx
    if min(cz, cy, cx) < 1:
        raise ValueError(f"region {region.shape} is no larger than the context {HALO}")
    core = region[hz:hz + cz, hy:hy + cy, hx:hx + cx].copy()
    fix = has(flags[hz:hz + cz, hy:hy + cy, hx:hx + cx], RESTORED)
    if not fix.any():
        return core
    blur, lost = flag_planes(flags)
    # even in-plane for the pooling: reflect one more row or column where needed
    pad = ((0, 0), (0, ny % 2), (0, nx % 2))
    x = np.pad(model.to_unit(region), pad, mode="reflect")
    b, lo = np.pad(blur, pad, mode="reflect"), np.pad(lost, pad, mode="reflect")
    ps = [(jnp.asarray(w), jnp.asarray(bb)) for w, bb in params]
    fn = _jitted()
    out = np.zeros_like(core)
    for z in np.flatnonzero(fix.any(axis=(1, 2))):  # one section (and its neighbours) a call
        sl = slice(int(z), int(z) + 2 * hz + 1)
        res = np.asarray(fn(ps, jnp.asarray(x[None, sl]), jnp.asarray(b[None, sl]),
                            jnp.asarray(lo[None, sl])))[0, 0]
        out[z] = model.to_uint8(res[hy:hy + cy, hx:hx + cx])
    core[fix] = out[fix]
    return core


def restore(restorer: Restorer, img: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """A whole uint8 volume with its flagged voxels restored (its faces reflected for
    context)."""
    if img.ndim != 3 or img.dtype != np.uint8 or flags.shape != img.shape:
        raise ValueError(f"restore needs a uint8 volume (z, y, x) and flags of its shape, got "
                         f"{img.dtype} {img.shape} and {flags.shape}")
    pads = [(h, h) for h in HALO]
    return restore_region(restorer.params, np.pad(img, pads, mode="reflect"),
                          np.pad(flags, pads, mode="reflect"))


def cleared(flags: np.ndarray) -> np.ndarray:
    """Defect flags after restoration: the `RESTORED` flags cleared (later stages then take
    decisions from the restored voxels)."""
    return (flags & np.uint8(0xFF & ~int(RESTORED))).astype(np.uint8)
