"""The adapter's networks (JAX; no I/O): two generators and two discriminators, all 2-D per section.

Style differences between volumes (contrast, membrane stain, blur, noise, texture) act within a
section, so the generators work section by section: a translated block needs context in-plane
only (`HALO`), never from neighbouring sections, and the 3-D reasoning stays with the segmenter.
A generator is a grey-level curve (`intensity`: a piecewise-linear look-up table, as a 1x1
convolution of hat functions, through tanh) followed by a small U-Net (two 3x3 convolutions, one
2x pooling level with two more and a skip connection, a 1x1 output) whose output is added to the
curve before the final tanh: a residual, zero at the start, so a fresh generator is its curve.
Grey levels are scaled to [-1, 1]; there is no normalisation layer, so a block translated with
its context equals the same voxels translated whole. A
discriminator is a patch classifier at a quarter of the resolution (least-squares GAN).
`g_ba` maps the new style (B) to the segmenter's (A): the one a run uses; `g_ab` exists for the
cycle loss.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from connectome_query.reconstruct import weights
from connectome_query.reconstruct.adapt import intensity

ADAPTER_FORMAT = "connectome-query/adapter/2"
WIDTH = 12
HALO = (0, 16, 16)
"""Context (z, y, x) a translated block needs: more than the generator's reach (about 9 px)."""
TILE = 256
"""Largest in-plane core of one translation call."""
VOXEL_SIZE_KEY = "voxel_size_nm_zyx"
Params = weights.Params
Layer = weights.Layer


def generator_layers(width: int = WIDTH) -> list[Layer]:
    """(in, out, kernel z, y, x) of a generator's convolutions, in order (the curve first)."""
    w = width
    return [(intensity.KNOTS, 1, (1, 1, 1)), (1, w, (1, 3, 3)), (w, w, (1, 3, 3)),
            (w, 2 * w, (1, 3, 3)), (2 * w, 2 * w, (1, 3, 3)), (3 * w, w, (1, 3, 3)),
            (w, 1, (1, 1, 1))]


def discriminator_layers(width: int = WIDTH) -> list[Layer]:
    """(in, out, kernel z, y, x) of a discriminator's convolutions, in order."""
    w = width
    return [(1, w, (1, 3, 3)), (w, 2 * w, (1, 3, 3)), (2 * w, 2 * w, (1, 3, 3)),
            (2 * w, 1, (1, 1, 1))]


def init(spec: list[Layer], rng: np.random.Generator) -> Params:
    """He-initialised weights for `spec`, biases zero."""
    out: Params = []
    for cin, cout, k in spec:
        fan_in = cin * int(np.prod(k))
        w = rng.standard_normal((cout, cin, *k)) * np.sqrt(2.0 / fan_in)
        out.append((w.astype(np.float32), np.zeros(cout, np.float32)))
    return out


def _pool(h: Any) -> Any:
    n, d, hh, ww, c = h.shape
    return h.reshape(n, d, hh // 2, 2, ww // 2, 2, c).mean(axis=(3, 5))


def generate(params: Params, x: Any) -> Any:
    """Translated images (N, z, y, x) in [-1, 1] of images (N, z, y, x) in [-1, 1]; y and x
    even."""
    import jax
    import jax.numpy as jnp

    relu = jax.nn.relu
    curve = weights.conv3d(intensity.basis(x), params[0])
    h1 = relu(weights.conv3d(jnp.tanh(curve), params[1]))
    h2 = relu(weights.conv3d(h1, params[2]))
    h3 = relu(weights.conv3d(_pool(h2), params[3]))
    h4 = relu(weights.conv3d(h3, params[4]))
    up = jnp.repeat(jnp.repeat(h4, 2, axis=2), 2, axis=3)
    h5 = relu(weights.conv3d(jnp.concatenate([up, h2], axis=-1), params[5]))
    return jnp.tanh((curve + weights.conv3d(h5, params[6]))[..., 0])


def discriminate(params: Params, x: Any) -> Any:
    """Realness scores (N, z, y/4, x/4) of images (N, z, y, x) in [-1, 1]; y, x divisible
    by 4."""
    import jax

    def act(v: Any) -> Any:
        return jax.nn.leaky_relu(v, 0.2)

    h = act(weights.conv3d(x[..., None], params[0]))
    h = act(weights.conv3d(_pool(h), params[1]))
    h = act(weights.conv3d(_pool(h), params[2]))
    return weights.conv3d(h, params[3])[..., 0]


def to_unit(img: np.ndarray) -> np.ndarray:
    """uint8 grey levels as float32 in [-1, 1] (what the generators read)."""
    return np.asarray(img, np.float32) / np.float32(127.5) - np.float32(1.0)


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Generator output in [-1, 1] back to uint8 grey levels."""
    return np.clip(np.rint((np.asarray(x) + 1.0) * 127.5), 0, 255).astype(np.uint8)


@dataclass
class Adapter:
    """Trained generators (B -> A used by runs, A -> B kept for fine-tuning) with metadata."""

    g_ba: Params
    g_ab: Params
    meta: dict[str, Any] = field(default_factory=dict)
    format: str = ADAPTER_FORMAT


def to_arrays(adapter: Adapter) -> dict[str, np.ndarray]:
    """Weights as named arrays (g_ba's layers, then g_ab's), metadata as JSON."""
    meta = {**adapter.meta, "width": int(adapter.meta.get("width", WIDTH))}
    return weights.to_arrays(adapter.format, meta, [*adapter.g_ba, *adapter.g_ab])


def from_arrays(arrays: dict[str, np.ndarray]) -> Adapter:
    """Inverse of `to_arrays`; checks the format and every layer's shape."""
    meta = weights.read_format(arrays, ADAPTER_FORMAT)
    spec = generator_layers(int(meta.get("width", WIDTH)))
    params = weights.read_params(arrays, [*spec, *spec])
    return Adapter(params[:len(spec)], params[len(spec):], meta)


def check_voxel_size(adapter: Adapter, voxel_size_zyx: tuple[float, float, float],
                     rel_tol: float = 0.01) -> None:
    """Refuse a volume whose voxel size differs from the one the adapter was trained at."""
    trained = adapter.meta.get(VOXEL_SIZE_KEY)
    if trained is None:
        raise ValueError(f"the adapter's metadata lacks {VOXEL_SIZE_KEY!r}; retrain it with "
                         "`connectome train-adapter`")
    if len(trained) != 3 or any(abs(float(t) - float(v)) > rel_tol * float(t)
                                for t, v in zip(trained, voxel_size_zyx, strict=False)):
        raise ValueError(f"the adapter was trained at voxel size {list(trained)[::-1]} nm "
                         f"(x, y, z) but the volume has "
                         f"{[float(v) for v in voxel_size_zyx][::-1]} nm")


@functools.cache
def _jitted() -> Callable[[Params, Any], Any]:
    import jax

    return jax.jit(generate)


def translate_region(params: Params, region: np.ndarray) -> np.ndarray:
    """The core of a uint8 region (z, y, x) translated: the region less `HALO` in-plane on
    each side (the caller provides that context, reflected where the volume ends). The core
    is cut into in-plane tiles of at most `TILE`, each read with `HALO` of context, so any
    region compiles to a few shapes."""
    import jax.numpy as jnp

    _, hy, hx = HALO
    nz, ny, nx = region.shape
    cy, cx = ny - 2 * hy, nx - 2 * hx
    if cy < 1 or cx < 1:
        raise ValueError(f"region {region.shape} is no larger than the context {HALO}")
    x = to_unit(region)
    ty = _tile(cy)
    tx = _tile(cx)
    big = np.pad(x, ((0, 0), (0, -(-cy // ty) * ty - cy), (0, -(-cx // tx) * tx - cx)),
                 mode="reflect")
    fn = _jitted()
    ps = [(jnp.asarray(w), jnp.asarray(b)) for w, b in params]
    out = np.empty((nz, cy, cx), np.uint8)
    for y0 in range(0, cy, ty):
        for x0 in range(0, cx, tx):
            tile = big[:, y0:y0 + ty + 2 * hy, x0:x0 + tx + 2 * hx]
            res = np.asarray(fn(ps, jnp.asarray(tile[None])))[0]
            core = to_uint8(res[:, hy:hy + ty, hx:hx + tx])
            h, w = min(ty, cy - y0), min(tx, cx - x0)
            out[:, y0:y0 + h, x0:x0 + w] = core[:, :h, :w]
    return out


def _tile(core: int) -> int:
    """Even tile size: as few tiles as `TILE` allows, split evenly."""
    n = -(-core // TILE)
    size = -(-core // n)
    return size + size % 2


def translate(adapter: Adapter, img: np.ndarray) -> np.ndarray:
    """A whole uint8 volume translated B -> A (its faces reflected for context)."""
    if img.ndim != 3 or img.dtype != np.uint8:
        raise ValueError(f"translate needs a uint8 volume (z, y, x), got {img.dtype} "
                         f"{img.shape}")
    _, hy, hx = HALO
    padded = np.pad(img, ((0, 0), (hy, hy), (hx, hx)), mode="reflect")
    return translate_region(adapter.g_ba, padded)
