"""A small 3D U-Net that predicts affinities and clefts from EM intensities (JAX; no I/O).

A voxel classifier on fixed filters (`boundary`) leaves about one cell-cell edge in ten connected,
and with ERL's merger rule a few such leaks zero whole segments; a network trained on the
affinities learns where inside two touching membranes the cut lies. About 72k parameters: two
full-resolution convolutions (the first in-plane only: sections are 2.5x thicker than pixels), one
in-plane 2x pooling level with a skip connection, and 4 outputs (affinities in the waterz layout,
`affs[c]` linking a voxel to its -1 neighbour along axis c, and a cleft logit). It trains on two
CPU cores in minutes and ships in `reconstruct/models/`, at 16 channels at full resolution and 32
pooled (`WIDTHS`), beside a lean one at (8, 24) distilled from it (`distil`; the widths are in
the weights' metadata). Prediction runs in equal tiles with a halo of the network's reach (one
compiled shape for any volume); larger tiles predict faster per voxel, identically.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from connectome_query.reconstruct import boundary, sections, weights
from connectome_query.reconstruct.lattice import neighbour_slices

NET_FORMAT = "connectome-query/affinity-unet/1"
Layers = tuple[tuple[int, int, tuple[int, int, int]], ...]
WIDTHS = (16, 32)
"""Channels at full resolution and at the pooled level of the shipped network."""
WIDTHS_KEY = "widths"  # metadata key: (full-resolution, pooled) channels of a network
STRIDE_KEY = "xy_stride"
"""Metadata key: the in-plane stride of the network's first level (1: the image's pixels; 2: a
coarse network, which reads each 2x2 block of pixels as 4 channels and writes 2x2 outputs per
position, so its convolutions run on 4x fewer positions)."""


def layers(widths: Sequence[int] = WIDTHS, stride: int = 1) -> Layers:
    """(in channels, out channels, kernel z, y, x) of each convolution for `widths`
    (first-level channels, pooled-level channels) and in-plane `stride`; one topology, any
    width (a stride-s network reads s*s pixels and writes s*s outputs per position)."""
    f, p = (int(v) for v in widths)
    s2 = int(stride) ** 2
    return ((s2, f, (1, 3, 3)), (f, f, (3, 3, 3)), (f, p, (3, 3, 3)), (p, p, (3, 3, 3)),
            (p + f, f, (3, 3, 3)), (f, f, (1, 3, 3)), (f, 4 * s2, (1, 1, 1)))


LAYERS = layers()
HALO = (4, 10, 10)
"""Sections / pixels of context each side of a prediction tile: the network's reach (4 sections,
9 pixels: 1 + 1 full-resolution pixels, 2 + 2 pooled ones, 1 + 1 again), in-plane rounded up to
even so that a tile's pooling pairs are the volume's; more context changes no output."""
TILE = (64, 256, 256)  # largest core of a prediction tile (see `tile_shape`)

Params = weights.Params
# metadata key: the voxel size (z, y, x nm) of the volumes the network was trained on
VOXEL_SIZE_KEY = "voxel_size_nm_zyx"


@dataclass
class AffinityNet:
    """Weights of the affinity U-Net with metadata (how it was trained)."""

    params: Params
    meta: dict[str, Any] = field(default_factory=dict)
    format: str = NET_FORMAT


def check_voxel_size(net: AffinityNet, voxel_size_zyx: Sequence[float],
                     rel_tol: float = 0.01) -> None:
    """Refuse a volume whose voxel size differs from the training volumes': a network
    that learnt membranes 2 pixels wide at 16 nm would misread them at 8 nm."""
    trained = net.meta.get(VOXEL_SIZE_KEY)
    if trained is None:
        raise ValueError(f"the network's metadata lacks {VOXEL_SIZE_KEY!r}, so the voxel "
                         "size it was trained at is unknown; retrain it with "
                         "`connectome train-affinity-net`")
    if len(trained) != 3 or any(abs(float(t) - float(v)) > rel_tol * float(t)
                                for t, v in zip(trained, voxel_size_zyx, strict=False)):
        want = [float(v) for v in voxel_size_zyx][::-1]
        raise ValueError(f"the network was trained at voxel size {list(trained)[::-1]} nm "
                         f"(x, y, z) but the volume has {want} nm; resample the volume, "
                         "train a network at this size, or pass --affinities")


def init_params(seed: int = 0, widths: Sequence[int] = WIDTHS, stride: int = 1) -> Params:
    """He-initialised weights for `layers(widths, stride)`."""
    import jax

    key = jax.random.PRNGKey(seed)
    out: Params = []
    for cin, cout, k in layers(widths, stride):
        key, sub = jax.random.split(key)
        fan_in = cin * int(np.prod(k))
        w = jax.random.normal(sub, (cout, cin, *k)) * np.sqrt(2.0 / fan_in)
        out.append((w, jax.numpy.zeros(cout)))
    return out


def net_stride(net: AffinityNet) -> int:
    """The in-plane stride of a network's first level (`STRIDE_KEY`; 1 if not recorded)."""
    return int(net.meta.get(STRIDE_KEY, 1))


def halo(stride: int = 1) -> tuple[int, int, int]:
    """Context each side of a prediction tile for a network of `stride`: its reach (`HALO`
    for stride 1; 19 pixels at stride 2), in-plane rounded up to a multiple of `align`."""
    if stride == 1:
        return HALO
    a = align(stride)
    reach = 9 * stride + stride - 1
    return HALO[0], -(-reach // a) * a, -(-reach // a) * a


def align(stride: int = 1) -> int:
    """In-plane multiple that tile and block origins keep for a network of `stride`, so that
    its pixel groups (stride) and pooling pairs are the volume's in every tile."""
    return 2 * int(stride)


def forward(params: Params, x: Any, stride: int = 1) -> Any:
    """Logits (N, 4, z, y, x) for normalised images (N, 1, z, y, x), y and x multiples of
    `align(stride)`. At stride s the s*s pixels of each block are the first level's input
    channels and its s*s outputs per channel go back to their pixels."""
    import jax
    import jax.numpy as jnp

    relu = jax.nn.relu
    h = jnp.moveaxis(x, 1, -1)  # channels last
    if stride > 1:
        n0, d0, y0, x0, _ = h.shape
        h = h.reshape(n0, d0, y0 // stride, stride, x0 // stride, stride)
        h = h.transpose(0, 1, 2, 4, 3, 5).reshape(n0, d0, y0 // stride, x0 // stride,
                                                  stride * stride)
    h1 = relu(weights.conv3d(h, params[0]))
    h2 = relu(weights.conv3d(h1, params[1]))
    n, d, hh, ww, c = h2.shape
    down = h2.reshape(n, d, hh // 2, 2, ww // 2, 2, c).mean(axis=(3, 5))
    h3 = relu(weights.conv3d(down, params[2]))
    h4 = relu(weights.conv3d(h3, params[3]))
    up = jnp.repeat(jnp.repeat(h4, 2, axis=2), 2, axis=3)
    h5 = relu(weights.conv3d(jnp.concatenate([up, h2], axis=-1), params[4]))
    h6 = relu(weights.conv3d(h5, params[5]))
    out = weights.conv3d(h6, params[6])
    if stride > 1:  # channel o * s * s + dy * s + dx is output o at pixel offset (dy, dx)
        n, d, hh, ww, _c = out.shape
        out = out.reshape(n, d, hh, ww, 4, stride, stride).transpose(0, 1, 2, 5, 3, 6, 4)
        out = out.reshape(n, d, hh * stride, ww * stride, 4)
    return jnp.moveaxis(out, -1, 1)


def prepare(img: np.ndarray) -> np.ndarray:
    """Section-normalised, repaired float32 image (the network's input; `sections`)."""
    return sections.prepare(img)


def _per_group(mask: np.ndarray, groups: np.ndarray, share: float) -> np.ndarray:
    """Weights on `mask` giving each group (a cell, a pair of touching cells) of the crop
    an equal part of `share`, whatever its size."""
    ids, inv, cnt = np.unique(groups[mask], return_inverse=True, return_counts=True)
    w = np.zeros(mask.shape, np.float32)
    w[mask] = share * mask.size / (len(ids) * cnt[inv])
    return w


def loss_weights(labels: np.ndarray, cleft: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Targets (4, z, y, x) and per-voxel loss weights for one training crop.

    Edges inside cells, edges between two cells and edges touching the outside carry
    fixed shares of the loss. Half of each of the first two shares is spread evenly over
    the edges, half over the cells (or touching pairs of cells) in the crop: the edges
    inside a thin axon, or between an axon and the dendrite it runs along, weigh as much
    in total as those of a soma, since thin processes are where edges are most often
    predicted wrong.
    """
    y = np.concatenate([boundary.true_affinities(labels), cleft[None].astype(np.float32)])
    m = np.ones_like(y)
    lab = labels.astype(np.int64)
    big = int(lab.max()) + 1
    for c in range(3):
        lo, hi = neighbour_slices(c)
        a, b = lab[hi], lab[lo]
        cellcell = np.zeros(labels.shape, bool)
        cellcell[hi] = (a != b) & (a != 0) & (b != 0)
        pair = np.zeros(labels.shape, np.int64)
        pair[hi] = np.minimum(a, b) * big + np.maximum(a, b)
        pos = y[c] > 0.5
        for mask, share in ((pos, 0.2), (cellcell, 0.15), (~pos & ~cellcell, 0.3)):
            frac = float(mask.mean())
            if frac > 0:
                m[c][mask] = share / frac
        if pos.any():
            m[c] += _per_group(pos, lab, 0.2)
        if cellcell.any():
            m[c] += _per_group(cellcell, pair, 0.15)
        first = [slice(None)] * 3
        first[c] = slice(0, 1)
        m[c][tuple(first)] = 0.0  # no -1 neighbour on the first plane
    pos_c = float(y[3].mean())
    if 0 < pos_c < 1:
        m[3] = np.where(y[3] > 0.5, 0.5 / pos_c, 0.5 / (1 - pos_c))
    return y, np.minimum(m, 50.0)


def _check_training_volumes(volumes: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
                            crop: tuple[int, int, int]) -> None:
    for img, lab, cl in volumes:
        if img.shape != lab.shape or img.shape != cl.shape:
            raise ValueError("image, labels and clefts must have one shape")
        if any(s < c for s, c in zip(img.shape, crop, strict=True)):
            raise ValueError(f"training volumes must be at least {crop} (z, y, x), "
                             f"got {img.shape}")


@functools.lru_cache(maxsize=4)
def _adam_step(stride: int = 1) -> Callable[..., Any]:
    """One compiled Adam step on the weighted cross-entropy of a network of `stride`:
    (params, (mu, nu, t), x, y, weights, rate) -> (params, (mu, nu, t), loss). Kept per
    stride, so that runs in one process compile it once a shape."""
    import jax
    import jax.numpy as jnp

    def loss_fn(ps: Params, x: Any, y: Any, m: Any) -> Any:
        lg = forward(ps, x, stride)
        bce = jnp.maximum(lg, 0) - lg * y + jnp.log1p(jnp.exp(-jnp.abs(lg)))
        return (bce * m).sum() / m.sum()

    @jax.jit
    def step(ps: Params, opt: Any, x: Any, y: Any, m: Any, rate: float) -> Any:
        value, g = jax.value_and_grad(loss_fn)(ps, x, y, m)
        ps, opt = weights.adam(ps, opt, g, rate)
        return ps, opt, value

    return step


def _batch(vols: list[tuple[np.ndarray, np.ndarray, np.ndarray]], rng: np.random.Generator,
           crop: tuple[int, int, int], batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inputs, targets, loss weights) of `batch` random crops, each flipped, transposed
    in-plane and given a gain and offset at random."""
    d, h, w = crop
    xs, ys, ms = [], [], []
    for _ in range(batch):
        a, lab, cl = vols[int(rng.integers(len(vols)))]
        z0 = int(rng.integers(0, a.shape[0] - d + 1))
        y0 = int(rng.integers(0, a.shape[1] - h + 1))
        x0 = int(rng.integers(0, a.shape[2] - w + 1))
        sl = (slice(z0, z0 + d), slice(y0, y0 + h), slice(x0, x0 + w))
        ia, la, ca = a[sl], lab[sl], cl[sl]
        if rng.random() < 0.5:
            ia, la, ca = ia[:, ::-1], la[:, ::-1], ca[:, ::-1]
        if rng.random() < 0.5:
            ia, la, ca = ia[:, :, ::-1], la[:, :, ::-1], ca[:, :, ::-1]
        if h == w and rng.random() < 0.5:
            ia, la, ca = (v.transpose(0, 2, 1) for v in (ia, la, ca))
        ia = ia * rng.uniform(0.8, 1.2) + rng.normal(0, 0.1)
        yt, mt = loss_weights(np.ascontiguousarray(la), np.ascontiguousarray(ca))
        xs.append(np.ascontiguousarray(ia, np.float32)[None])
        ys.append(yt)
        ms.append(mt)
    return np.stack(xs), np.stack(ys), np.stack(ms)


def train(volumes: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], steps: int,
          seed: int = 0, init: AffinityNet | None = None, lr: float = 1e-3,
          crop: tuple[int, int, int] = (12, 48, 48), batch: int = 2,
          tick: Callable[[int, float], None] | None = None,
          trained_on: str = "",
          voxel_size_zyx: tuple[float, float, float] = (40.0, 16.0, 16.0)) -> AffinityNet:
    """Train on (image uint8, labels, cleft mask) volumes with Adam, random crops, flips
    and in-plane transposes, and random gain/offset. The volumes' voxel size is recorded
    in the weights: the network only knows that scale (`check_voxel_size`)."""
    import jax
    import jax.numpy as jnp

    if not volumes:
        raise ValueError("training needs at least one volume")
    if init is not None:
        check_voxel_size(init, voxel_size_zyx)
    _check_training_volumes(volumes, crop)
    rng = np.random.default_rng(seed)
    vols = [(prepare(img), lab, cl) for img, lab, cl in volumes]
    params = init.params if init is not None else init_params(seed)
    params = [(jnp.asarray(w), jnp.asarray(b)) for w, b in params]
    step = _adam_step()
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    opt = (zeros, zeros, 0)
    losses: list[float] = []
    for it in range(steps):
        x, y, m = _batch(vols, rng, crop, batch)
        rate = lr if it < 0.7 * steps else lr * 0.3
        params, opt, value = step(params, opt, jnp.asarray(x), jnp.asarray(y), jnp.asarray(m),
                                  rate)
        losses.append(float(value))
        if tick is not None:
            tick(it, losses[-1])
    meta = {"steps": steps + int((init.meta if init else {}).get("steps", 0)),
            "crop_zyx": list(crop), "batch": batch, "lr": lr, "seed": seed,
            "final_loss": float(np.mean(losses[-20:])) if losses else None,
            "trained_on": trained_on or (init.meta.get("trained_on", "") if init else ""),
            VOXEL_SIZE_KEY: [float(v) for v in voxel_size_zyx]}
    return AffinityNet(params=[(np.asarray(w_), np.asarray(b_)) for w_, b_ in params],
                       meta=meta)


def predict(net: AffinityNet, img: np.ndarray, augment: bool = False,
            tile: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Affinities (3, z, y, x) float32 in the waterz layout and cleft probability
    (z, y, x) of a whole volume, predicted tile by tile (cores of at most `tile`, default
    `TILE`) with the network's `halo` of context (the volume reflected at its faces).

    With `augment`, the mean over the 8 in-plane flips and transposes of the image (each
    prediction mapped back; an affinity to the -1 neighbour becomes one to the +1
    neighbour under a flip, hence the shift): 8x the time, fewer isolated mistakes.
    """
    check_format(net)
    a = prepare(img)
    stride = net_stride(net)
    pads = context_pads((0, 0, 0), a.shape, (0, 0, 0), a.shape, a.shape, stride)
    affs, cleft = predict_region(net, pad_region(a, pads), augment, tile)
    core = tuple(slice(0, n) for n in img.shape)
    return finish(affs[(slice(None), *core)], cleft[core], (True, True, True))


def check_format(net: AffinityNet) -> None:
    if getattr(net, "format", None) != NET_FORMAT:
        raise ValueError(f"network format is {getattr(net, 'format', None)!r}, "
                         f"expected {NET_FORMAT!r}")


def context_pads(core_lo: Sequence[int], core_hi: Sequence[int], region_lo: Sequence[int],
                 region_hi: Sequence[int], shape: Sequence[int],
                 stride: int = 1) -> list[tuple[int, int]]:
    """Reflection to add to a region (the core with up to `halo(stride)` of context,
    clipped to the volume of `shape`) so that the core has that context on every side, the
    volume reflected at its faces; in-plane a few pixels more past a core that is not a
    multiple of `align(stride)` (it ends at the volume's face), so that the region's pixel
    groups and pooling pairs stay those of every block."""
    out = []
    step = align(stride)
    for axis, h in enumerate(halo(stride)):
        low = h - (core_lo[axis] - region_lo[axis]) if region_lo[axis] == 0 else 0
        high = h - (region_hi[axis] - core_hi[axis]) if region_hi[axis] == shape[axis] else 0
        if axis > 0:
            high += -(core_hi[axis] - core_lo[axis]) % step
        out.append((low, high))
    return out


def pad_region(a: np.ndarray, pads: Sequence[tuple[int, int]]) -> np.ndarray:
    """`a` reflected outward by `pads` (see `context_pads`)."""
    if not any(p for pp in pads for p in pp):
        return a
    return np.pad(a, list(pads), mode="reflect")


def predict_region(net: AffinityNet, a: np.ndarray, augment: bool = False,
                   tile: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Raw affinities (3, ...) and cleft probability of the core of a prepared region `a`,
    which is `a` less the network's `halo` each side (context; `pad_region` where the
    volume ends; the caller crops the extra pixels `context_pads` may add). `augment` and
    `tile` as in `predict`."""
    h_ = halo(net_stride(net))
    shape = tuple(n - 2 * h for h, n in zip(h_, a.shape, strict=True))
    core = [slice(h, h + c) for h, c in zip(h_, shape, strict=True)]
    if not augment:
        out = _predict_prepared(net, a, tile)
        return out[0][(slice(None), *core)], out[1][tuple(core)]
    affs = np.zeros((3, *shape), np.float32)
    cleft = np.zeros(shape, np.float32)
    for transpose in (False, True):
        for fy in (False, True):
            for fx in (False, True):
                v = a.transpose(0, 2, 1) if transpose else a
                v = v[:, ::-1] if fy else v
                v = v[:, :, ::-1] if fx else v
                af, cl = _predict_prepared(net, np.ascontiguousarray(v), tile)
                if fx:
                    af, cl = af[:, :, :, ::-1], cl[:, :, ::-1]
                    af = np.concatenate([af[:2], _shift_back(af[2], 2)[None]])
                if fy:
                    af, cl = af[:, :, ::-1], cl[:, ::-1]
                    af = np.concatenate([af[:1], _shift_back(af[1], 1)[None], af[2:]])
                if transpose:  # the y and x channels trade places
                    af = af[[0, 2, 1]].transpose(0, 1, 3, 2)
                    cl = cl.transpose(0, 2, 1)
                affs += af[(slice(None), *core)]
                cleft += cl[tuple(core)]
    return affs / 8, cleft / 8


def _shift_back(a: np.ndarray, axis: int) -> np.ndarray:
    """One affinity channel (z, y, x) linking v to v+1, stored at v, moved to the waterz
    layout (stored at v+1, linking it to its -1 neighbour) along `axis`."""
    out = np.zeros_like(a)
    src, dst = neighbour_slices(axis)
    out[dst] = a[src]
    return out


def finish(affs: np.ndarray, cleft: np.ndarray,
           starts: tuple[bool, bool, bool]) -> tuple[np.ndarray, np.ndarray]:
    """Affinities as float32 with the edges out of the volume (from its first plane along
    each axis, where `starts` says the array begins there) set to 0."""
    affs = np.ascontiguousarray(affs, np.float32)
    if starts[0]:
        affs[0, 0] = 0.0
    if starts[1]:
        affs[1, :, 0] = 0.0
    if starts[2]:
        affs[2, :, :, 0] = 0.0
    return affs, np.ascontiguousarray(cleft, np.float32)


@functools.cache
def _jitted_probabilities(stride: int = 1) -> Callable[[Params, Any], Any]:
    """sigmoid(forward) of a network of `stride`, compiled once per process (and per tile
    shape), not per call; the compiled code is kept on disk (the cache directory's `jax/`),
    so that the workers of a run, and later runs, load it instead of compiling again."""
    import jax

    from connectome_query.graphdb.settings import cache_dir

    try:
        jax.config.update("jax_compilation_cache_dir", str(cache_dir() / "jax"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    except Exception:  # an older JAX without the persistent cache: compile each time
        pass
    return jax.jit(lambda ps, x: jax.nn.sigmoid(forward(ps, x, stride)))


def tile_shape(shape: Sequence[int], limit: Sequence[int] | None = None,
               stride: int = 1) -> tuple[int, int, int]:
    """Core size of the prediction tiles for a volume: as few tiles per axis as `limit`
    (default `TILE`) allows, split evenly so that padding wastes less than `align(stride)`
    voxel rows per tile, with in-plane sizes multiples of `align(stride)`. All tiles share
    one shape (one compile)."""
    step = align(stride)
    out = []
    for axis, (s, t) in enumerate(zip(shape, TILE if limit is None else limit, strict=True)):
        if axis > 0:
            t = max(int(t) - int(t) % step, step)
        n = -(-int(s) // int(t))
        size = -(-int(s) // n)
        out.append(size + (-size % step) if axis > 0 else size)
    return out[0], out[1], out[2]


def _predict_prepared(net: AffinityNet, a: np.ndarray,
                      tile_limit: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Raw sigmoid outputs (3 affinities, cleft) at every voxel of a prepared region, tile
    by tile, each tile read with the network's `halo` of context from the region (or zeros
    beyond it): right where the region holds that context, that is at its core."""
    import jax.numpy as jnp

    stride = net_stride(net)
    h_ = halo(stride)
    params = [(jnp.asarray(w), jnp.asarray(b)) for w, b in net.params]
    fwd = _jitted_probabilities(stride)
    core = [max(n - 2 * h, 1) for n, h in zip(a.shape, h_, strict=True)]
    tile = tile_shape(core, tile_limit, stride)
    n_t = [-(-c // t) for c, t in zip(core, tile, strict=True)]
    # room for whole tiles with their context (beyond the region: zeros, which reach
    # only outputs past the core)
    pad = [(0, max(n * t + 2 * h - s, 0)) for n, t, h, s in zip(n_t, tile, h_, a.shape,
                                                                  strict=True)]
    big = np.pad(a, pad) if any(p[1] for p in pad) else a
    out = np.zeros((4, *a.shape), np.float32)
    for iz in range(n_t[0]):
        for iy in range(n_t[1]):
            for ix in range(n_t[2]):
                o = (iz * tile[0], iy * tile[1], ix * tile[2])
                sl = tuple(slice(oo, oo + t + 2 * h) for oo, t, h in
                           zip(o, tile, h_, strict=True))
                res = np.asarray(fwd(params, jnp.asarray(big[sl][None, None])))[0]
                dst = tuple(slice(oo + h, min(oo + h + t, s)) for oo, h, t, s in
                            zip(o, h_, tile, a.shape, strict=True))
                src = tuple(slice(h, h + (d.stop - d.start)) for h, d in
                            zip(h_, dst, strict=True))
                out[(slice(None), *dst)] = res[(slice(None), *src)]
    return out[:3], out[3]


def to_arrays(net: AffinityNet) -> dict[str, np.ndarray]:
    """Weights as named arrays (for npz), metadata as a JSON string array."""
    return weights.to_arrays(net.format, net.meta, net.params)


def from_arrays(arrays: dict[str, np.ndarray]) -> AffinityNet:
    """Inverse of `to_arrays`; checks format and layer shapes."""
    meta = weights.read_format(arrays, NET_FORMAT)
    widths = meta.get(WIDTHS_KEY, WIDTHS)
    stride = int(meta.get(STRIDE_KEY, 1))
    if stride not in (1, 2):
        raise ValueError(f"{STRIDE_KEY} must be 1 or 2, got {stride}")
    return AffinityNet(params=weights.read_params(arrays, layers(widths, stride)), meta=meta)
