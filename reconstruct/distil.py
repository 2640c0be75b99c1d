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
from pathlib import Path
from typing import Any

import numpy as np

from connectome_query.reconstruct import affinity_net, weights
from connectome_query.reconstruct.affinity_net import AffinityNet, Params

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
           rng: np.random.Generator, crop: tuple[int, int, int], batch: int,
           truth_weight: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inputs, soft targets, loss weights) of `batch` random crops; the targets are the
    teacher's probabilities, mixed with the truth's affinities and cleft at `truth_weight`."""
    d, h, w = crop
    xs, ys, ms = [], [], []
    for _ in range(batch):
        k = int(rng.integers(len(volumes)))
        a = prepared[k]
        z0, y0, x0 = (int(rng.integers(0, n - c + 1)) for n, c in zip(a.shape, crop,
                                                                         strict=True))
        sl = (slice(z0, z0 + d), slice(y0, y0 + h), slice(x0, x0 + w))
        _img, lab, cl = volumes[k]
        truth, m = affinity_net.loss_weights(np.ascontiguousarray(lab[sl]),
                                             np.ascontiguousarray(cl[sl]))
        soft = targets[k][(slice(None), *sl)]
        ys.append(soft if truth_weight == 0 else (1 - truth_weight) * soft + truth_weight * truth)
        ms.append(m)
        xs.append((a[sl] * rng.uniform(0.8, 1.2) + rng.normal(0, 0.1))[None])
    return (np.stack(xs).astype(np.float32), np.stack(ys).astype(np.float32),
            np.stack(ms).astype(np.float32))


def coarse_start(teacher: AffinityNet, stride: int) -> Params:
    """Starting weights for a student of the teacher's widths at in-plane `stride`: the
    teacher's inner layers as they are, its first layer spread evenly over the s*s pixels
    of a block, its last layer copied to each of them (at the start, the teacher run on the
    image averaged over blocks, each output repeated over its block)."""
    s2 = stride * stride
    params = [(np.asarray(w, np.float32), np.asarray(b, np.float32)) for w, b in teacher.params]
    w0, b0 = params[0]
    w6, b6 = params[-1]
    first = (np.repeat(w0, s2, axis=1) / s2, b0)
    last = (np.repeat(w6, s2, axis=0), np.repeat(b6, s2))
    return [first, *params[1:-1], last]


def check_student(init: AffinityNet, widths: Sequence[int], stride: int,
                  voxel_size_zyx: Sequence[float]) -> None:
    """Refuse starting weights of another stride, other widths or another voxel size than
    the student being distilled (ValueError naming what differs)."""
    got = affinity_net.net_stride(init)
    if got != stride:
        raise ValueError(f"the starting weights are at in-plane stride {got}, not {stride}")
    got_w = tuple(int(v) for v in init.meta.get(affinity_net.WIDTHS_KEY, affinity_net.WIDTHS))
    if got_w != tuple(widths):
        raise ValueError(f"the starting weights have widths {list(got_w)}, not {list(widths)}")
    affinity_net.check_voxel_size(init, voxel_size_zyx)


def _start(teacher: AffinityNet, init: AffinityNet | None, widths: Sequence[int],
           stride: int, seed: int) -> Params:
    """The student's first weights: `init`, else the teacher's spread over the pixel blocks
    (a coarse student of the teacher's widths), else random ones."""
    if init is not None:
        return [(np.asarray(w, np.float32), np.asarray(b, np.float32)) for w, b in init.params]
    teacher_widths = tuple(teacher.meta.get(affinity_net.WIDTHS_KEY, affinity_net.WIDTHS))
    if stride > 1 and tuple(widths) == teacher_widths and affinity_net.net_stride(teacher) == 1:
        return coarse_start(teacher, stride)
    return [(np.asarray(w), np.asarray(b)) for w, b in
            affinity_net.init_params(seed, widths, stride)]


def distil(teacher: AffinityNet, volumes: Sequence[Volume], steps: int,
           widths: Sequence[int] = LEAN_WIDTHS, seed: int = 0, lr: float = 1e-3,
           crop: tuple[int, int, int] = (12, 48, 48), batch: int = 2,
           tick: Callable[[int, float], None] | None = None,
           trained_on: str = "", stride: int = 1,
           max_seconds: float | None = None, init: AffinityNet | None = None,
           truth_weight: float = 0.0, checkpoint: Path | None = None,
           checkpoint_every: int = 25,
           start: Callable[[int], None] | None = None) -> AffinityNet:
    """A network of `widths` and in-plane `stride` trained with Adam to reproduce `teacher`
    on (image uint8, labels, cleft mask) volumes; the teacher's voxel size is the
    student's. It starts from `init` (a student of the same widths, stride and voxel size,
    to distil further), else, a coarse student (stride 2) of the teacher's widths, from the
    teacher's weights (`coarse_start`). With `checkpoint`, the weights and the optimiser's
    state are saved every `checkpoint_every` steps, and an existing checkpoint is resumed
    (`start` hears the step; each step's crops come from (seed, step), so a resumed run
    draws what an unbroken one would). Runs up to step `steps`; with `max_seconds`,
    training stops (checkpointed) after the first step that ends past it (the rate drops
    at 70 % of the steps or of this run's time)."""
    import time

    import jax
    import jax.numpy as jnp

    if not volumes:
        raise ValueError("distillation needs at least one volume")
    if steps < 1 or checkpoint_every < 1:
        raise ValueError(f"steps and checkpoint_every must be at least 1, got {steps}, "
                         f"{checkpoint_every}")
    if not 0 <= truth_weight <= 1:
        raise ValueError(f"truth_weight must be in [0, 1], got {truth_weight}")
    vs = [float(v) for v in teacher.meta.get(affinity_net.VOXEL_SIZE_KEY) or ()]
    affinity_net.check_voxel_size(teacher, vs)
    if init is not None:
        check_student(init, widths, stride, vs)
    for img, _lab, _cl in volumes:
        if any(s < c for s, c in zip(img.shape, crop, strict=True)):
            raise ValueError(f"volumes must be at least {crop} (z, y, x), got {img.shape}")
    a = affinity_net.align(stride)
    if crop[1] % a or crop[2] % a:
        raise ValueError(f"crop y and x must be multiples of {a} at stride {stride}, "
                         f"got {crop}")
    first = _start(teacher, init, widths, stride, seed)
    zeros = [(np.zeros_like(w), np.zeros_like(b)) for w, b in first]
    state: Any = (first, (zeros, zeros, np.float32(0)))
    done, losses = 0, list[float]()
    if checkpoint is not None and checkpoint.exists():
        state, done, losses = weights.load_state(checkpoint, state, "distillation")
    params, opt = jax.tree_util.tree_map(jnp.asarray, state)
    if start is not None:
        start(done)
    targets = teacher_targets(teacher, volumes)
    prepared = [affinity_net.prepare(img) for img, _lab, _cl in volumes]
    step = affinity_net._adam_step(stride)
    t0 = time.perf_counter()
    for it in range(done, steps):
        rng = np.random.default_rng([seed, it])
        x, y, m = _batch(prepared, volumes, targets, rng, crop, batch, truth_weight)
        elapsed = time.perf_counter() - t0
        late = it >= 0.7 * steps or (max_seconds is not None and elapsed > 0.7 * max_seconds)
        params, opt, value = step(params, opt, jnp.asarray(x), jnp.asarray(y),
                                  jnp.asarray(m), lr * 0.3 if late else lr)
        losses = [*losses[-24:], float(value)]
        done = it + 1
        if tick is not None:
            tick(it, losses[-1])
        over = max_seconds is not None and time.perf_counter() - t0 > max_seconds
        if checkpoint is not None and (done % checkpoint_every == 0 or done == steps or over):
            weights.save_state(checkpoint, (params, opt), done, losses)
        if over:
            break
    before = int((init.meta if init is not None else {}).get("steps", 0))
    meta = {"steps": before + done, "crop_zyx": list(crop), "batch": batch, "lr": lr,
            "seed": seed, "truth_weight": truth_weight,
            "final_loss": float(np.mean(losses[-20:])) if losses else None,
            "trained_on": trained_on, "distilled_from": teacher.meta.get("trained_on", ""),
            affinity_net.WIDTHS_KEY: [int(v) for v in widths],
            affinity_net.STRIDE_KEY: int(stride),
            affinity_net.VOXEL_SIZE_KEY: vs}
    return AffinityNet(params=[(np.asarray(w), np.asarray(b)) for w, b in params], meta=meta)


def multiply_adds(widths: Sequence[int], stride: int = 1) -> float:
    """Multiply-adds of the network per output voxel (the pooled level counts a quarter;
    at stride s every layer runs on 1/(s*s) of the voxels)."""
    total = 0.0
    for i, (cin, cout, k) in enumerate(affinity_net.layers(widths, stride)):
        total += cin * cout * float(np.prod(k)) * (0.25 if i in (2, 3) else 1.0)
    return total / (stride * stride)


__all__ = ["LEAN_WIDTHS", "check_student", "distil", "multiply_adds", "teacher_targets"]
