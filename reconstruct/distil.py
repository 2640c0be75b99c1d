"""A leaner affinity network distilled from a wider one (the shipped network): same U-Net, fewer
channels, trained on the wider network's outputs.

The student copies the teacher's probabilities (soft targets: where the teacher hesitates, so does
the student) under the teacher's own loss weights (`affinity_net.loss_weights`, from the truth), on
random crops of synthetic volumes with a random gain and offset. Crops are not flipped: a flip
would move the -1 neighbour of the teacher's affinities (the truth's are recomputed; the
teacher's are not).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from connectome_query.reconstruct import affinity_net
from connectome_query.reconstruct.affinity_net import AffinityNet

LEAN_WIDTHS = (8, 24)
"""Channels (full resolution, pooled) of the lean network: about 2.8x fewer multiply-adds a
voxel than the shipped (16, 32)."""

Volume = tuple[np.ndarray, np.ndarray, np.ndarray]


def teacher_targets(teacher: AffinityNet, volumes: Sequence[Volume]) -> list[np.ndarray]:
    """The teacher's probabilities (3 affinities and the cleft, (4, z, y, x)) on each
    volume's image."""
    out = []
    for img, _lab, _cl in volumes:
        affs, cleft = affinity_net.predict(teacher, img)
        out.append(np.concatenate([affs, cleft[None]]))
    return out


def _batch(prepared: list[np.ndarray], volumes: Sequence[Volume], targets: list[np.ndarray],
           rng: np.random.Generator, crop: tuple[int, int, int],
           batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inputs, soft targets, loss weights) of `batch` random crops."""
    d, h, w = crop
    xs, ys, ms = [], [], []
    for _ in range(batch):
        k = int(rng.integers(len(volumes)))
        a = prepared[k]
        z0, y0, x0 = (int(rng.integers(0, n - c + 1)) for n, c in zip(a.shape, crop,
                                                                         strict=True))
        sl = (slice(z0, z0 + d), slice(y0, y0 + h), slice(x0, x0 + w))
        _img, lab, cl = volumes[k]
        _truth, m = affinity_net.loss_weights(np.ascontiguousarray(lab[sl]),
                                              np.ascontiguousarray(cl[sl]))
        ys.append(targets[k][(slice(None), *sl)])
        ms.append(m)
        xs.append((a[sl] * rng.uniform(0.8, 1.2) + rng.normal(0, 0.1))[None])
    return (np.stack(xs).astype(np.float32), np.stack(ys).astype(np.float32),
            np.stack(ms).astype(np.float32))


def distil(teacher: AffinityNet, volumes: Sequence[Volume], steps: int,
           widths: Sequence[int] = LEAN_WIDTHS, seed: int = 0, lr: float = 1e-3,
           crop: tuple[int, int, int] = (12, 48, 48), batch: int = 2,
           tick: Callable[[int, float], None] | None = None,
           trained_on: str = "") -> AffinityNet:
    """A network of `widths` trained with Adam to reproduce `teacher` on (image uint8,
    labels, cleft mask) volumes; the teacher's voxel size is the student's."""
    import jax.numpy as jnp

    if not volumes:
        raise ValueError("distillation needs at least one volume")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    vs = [float(v) for v in teacher.meta.get(affinity_net.VOXEL_SIZE_KEY) or ()]
    affinity_net.check_voxel_size(teacher, vs)
    for img, _lab, _cl in volumes:
        if any(s < c for s, c in zip(img.shape, crop, strict=True)):
            raise ValueError(f"volumes must be at least {crop} (z, y, x), got {img.shape}")
    targets = teacher_targets(teacher, volumes)
    prepared = [affinity_net.prepare(img) for img, _lab, _cl in volumes]
    rng = np.random.default_rng(seed)
    params: Any = [(jnp.asarray(w), jnp.asarray(b))
                   for w, b in affinity_net.init_params(seed, widths)]
    step = affinity_net._adam_step()
    zeros = [(jnp.zeros_like(w), jnp.zeros_like(b)) for w, b in params]
    opt: Any = (zeros, zeros, 0)
    losses: list[float] = []
    for it in range(steps):
        x, y, m = _batch(prepared, volumes, targets, rng, crop, batch)
        rate = lr if it < 0.7 * steps else lr * 0.3
        params, opt, value = step(params, opt, jnp.asarray(x), jnp.asarray(y),
                                  jnp.asarray(m), rate)
        losses.append(float(value))
        if tick is not None:
            tick(it, losses[-1])
    meta = {"steps": steps, "crop_zyx": list(crop), "batch": batch, "lr": lr, "seed": seed,
            "final_loss": float(np.mean(losses[-20:])),
            "trained_on": trained_on, "distilled_from": teacher.meta.get("trained_on", ""),
            affinity_net.WIDTHS_KEY: [int(v) for v in widths],
            affinity_net.VOXEL_SIZE_KEY: vs}
    return AffinityNet(params=[(np.asarray(w), np.asarray(b)) for w, b in params], meta=meta)


def multiply_adds(widths: Sequence[int]) -> float:
    """Multiply-adds of the network per output voxel (the pooled level counts a quarter)."""
    total = 0.0
    for i, (cin, cout, k) in enumerate(affinity_net.layers(widths)):
        total += cin * cout * float(np.prod(k)) * (0.25 if i in (2, 3) else 1.0)
    return total


__all__ = ["LEAN_WIDTHS", "distil", "multiply_adds", "teacher_targets"]
