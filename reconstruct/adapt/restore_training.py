"""Training the restorer (resumable; no CLI) on clean volumes damaged on the fly (`degrade`).

Each step draws crops of clean volumes (`crop` sections plus one above and one below), damages
one or two of the inner sections with a random degradation and trains the restorer on the
pair: the L1 distance to the clean crop over the flagged voxels (the only ones the restorer
changes) plus `segmentation` times the adapter's segmentation-consistency term
(`consistency.affinity_term`): the frozen affinity network must read the restored crop as it
reads the clean one. Supervised: the pair is known, so no discriminator is needed.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from connectome_query.reconstruct import affinity_net, weights
from connectome_query.reconstruct.adapt import consistency, degrade, model, restore

LOSSES = ("l1", "seg")


@dataclass(frozen=True)
class RestoreConfig:
    """Settings of a restorer training run."""

    crop: tuple[int, int, int] = (4, 64, 64)
    batch: int = 4
    lr: float = 1e-3
    segmentation: float = 1.0
    seed: int = 0
    checkpoint_every: int = 50

    def check(self) -> None:
        d, h, w = self.crop
        if d < 1 or h < 16 or w < 16 or h % 2 or w % 2:
            raise ValueError(f"crop must be (z >= 1, y, x) with y and x even and at least 16, "
                             f"got {self.crop}")
        if self.batch < 1 or self.checkpoint_every < 1 or not self.lr > 0:
            raise ValueError("batch and checkpoint_every must be at least 1, lr positive")
        if self.segmentation < 0:
            raise ValueError(f"segmentation weight must be >= 0, got {self.segmentation}")


def pairs(vols: Sequence[np.ndarray], cfg: RestoreConfig, step: int
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(damaged crops (batch, z + 2, y, x) in [-1, 1], their flags (uint8), clean crops) of
    one step, drawn from the seed and the step alone."""
    rng = np.random.default_rng([cfg.seed, step, 28])
    d, h, w = cfg.crop
    dmg, flg, cln = [], [], []
    for _ in range(cfg.batch):
        v = vols[int(rng.integers(len(vols)))]
        z0, y0, x0 = (int(rng.integers(0, s - c + 1))
                      for s, c in zip(v.shape, (d + 2, h, w), strict=True))
        clean = v[z0:z0 + d + 2, y0:y0 + h, x0:x0 + w]
        if rng.random() < 0.5:
            clean = clean[:, ::-1]
        if rng.random() < 0.5:
            clean = clean[:, :, ::-1]
        clean = np.ascontiguousarray(clean)
        inner = rng.choice(np.arange(1, d + 1), size=min(int(rng.integers(1, 3)), d),
                           replace=False)
        plan = [(int(z), str(rng.choice(degrade.KINDS))) for z in inner]
        damaged, flags = degrade.degrade_volume(clean, plan, int(rng.integers(2**31)))
        dmg.append(model.to_unit(damaged))
        flg.append(flags)
        cln.append(model.to_unit(clean))
    return np.stack(dmg), np.stack(flg), np.stack(cln)


def losses_fn(params: Any, seg: Any, img: Any, blur: Any, lost: Any, clean: Any,
              cfg_seg: float) -> tuple[Any, dict[str, Any]]:
    """Total loss and its terms for damaged crops `img` (N, z + 2, y, x) with flag planes and
    their clean crops; only flagged voxels take the restorer's output."""
    import jax.numpy as jnp

    out = restore.forward(params, img, blur, lost)
    fix = jnp.maximum(blur, lost)[:, 1:-1]
    restored = jnp.where(fix > 0, out, img[:, 1:-1])
    target = clean[:, 1:-1]
    l1 = jnp.sum(jnp.abs(restored - target)) / jnp.maximum(jnp.sum(fix), 1.0)
    sc = jnp.zeros(()) if seg is None or cfg_seg == 0 else \
        consistency.affinity_term(seg, target, restored)
    return l1 + cfg_seg * sc, {"l1": l1, "seg": sc}


@functools.lru_cache(maxsize=4)
def compiled_step(cfg_seg: float, with_seg: bool) -> Callable[..., Any]:
    """One compiled Adam step: (params, opt, seg, img, blur, lost, clean, rate) -> (params,
    opt, loss terms)."""
    import jax

    def step(params: Any, opt: Any, seg: Any, img: Any, blur: Any, lost: Any, clean: Any,
             rate: float) -> Any:
        (_, parts), g = jax.value_and_grad(losses_fn, has_aux=True)(
            params, seg if with_seg else None, img, blur, lost, clean, cfg_seg)
        params, opt = weights.adam(params, opt, g, rate)
        return params, opt, parts

    return jax.jit(step)


def _flag_planes(flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    blur, lost = restore.flag_planes(flags)
    return blur, lost


def save_checkpoint(path: Path, params: Any, opt: Any, step: int) -> None:
    """Weights, optimiser state and step in one .npz (`weights.save_state`)."""
    weights.save_state(path, (params, opt), step)


def load_checkpoint(path: Path, fresh: Any) -> tuple[Any, Any, int]:
    """A state saved by `save_checkpoint`, checked against `fresh` (params, opt)'s layout."""
    (params, opt), step, _ = weights.load_state(path, fresh, "restorer training")
    return params, opt, step


def train(vols: Sequence[np.ndarray], steps: int, checkpoint: Path,
          segmenter: affinity_net.AffinityNet | None, cfg: RestoreConfig = RestoreConfig(),
          log: Path | None = None,
          tick: Callable[[int, dict[str, float]], None] = lambda i, losses: None,
          meta: dict[str, Any] | None = None) -> restore.Restorer:
    """Train for `steps` steps in all (resuming from `checkpoint` when it exists), saving it
    every `cfg.checkpoint_every` steps; each step's losses are appended to `log` (JSON
    lines). `segmenter` None leaves out the segmentation term."""
    import jax
    import jax.numpy as jnp

    cfg.check()
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if not vols:
        raise ValueError("training needs at least one clean volume")
    d, h, w = cfg.crop
    for v in vols:
        if v.dtype != np.uint8 or v.ndim != 3:
            raise ValueError(f"clean volumes must be uint8 (z, y, x), got {v.dtype} {v.shape}")
        if any(s < c for s, c in zip(v.shape, (d + 2, h, w), strict=True)):
            raise ValueError(f"clean volume of shape {v.shape} is smaller than the crop "
                             f"{cfg.crop} with one section above and below")
    params0 = restore.init(cfg.seed)
    zeros = jax.tree_util.tree_map(np.zeros_like, params0)
    fresh = (params0, (zeros, zeros, np.float32(0)))
    params, opt, start = load_checkpoint(checkpoint, fresh) if checkpoint.exists() else \
        (*fresh, 0)
    as_jax = functools.partial(jax.tree_util.tree_map, jnp.asarray)
    params, opt = as_jax(params), as_jax(opt)
    seg = None if segmenter is None else as_jax(list(segmenter.params))
    step = compiled_step(float(cfg.segmentation), seg is not None)
    recent: list[list[float]] = []
    for i in range(start, steps):
        img, flags, clean = pairs(vols, cfg, i)
        blur, lost = _flag_planes(flags)
        params, opt, parts = step(params, opt, seg, jnp.asarray(img), jnp.asarray(blur),
                                  jnp.asarray(lost), jnp.asarray(clean), cfg.lr)
        row = {k: float(parts[k]) for k in LOSSES}
        recent = [*recent[-24:], [row[k] for k in LOSSES]]
        if log is not None:
            with open(log, "a") as fh:
                fh.write(json.dumps({"step": i + 1, **row}) + "\n")
        tick(i, row)
        if (i + 1) % cfg.checkpoint_every == 0 or i + 1 == steps:
            save_checkpoint(checkpoint, params, opt, i + 1)
    last = np.asarray(recent, float).reshape(-1, len(LOSSES))
    out_meta = {**(meta or {}), "steps": steps, "width": restore.WIDTH,
                "crop_zyx": list(cfg.crop), "batch": cfg.batch, "lr": cfg.lr,
                "segmentation_weight": cfg.segmentation if seg is not None else 0.0,
                "seed": cfg.seed, "degradations": list(degrade.KINDS),
                "final_losses": {k: float(last[:, j].mean()) if len(last) else None
                                 for j, k in enumerate(LOSSES)}}
    ps = jax.tree_util.tree_map(np.asarray, params)
    return restore.Restorer([tuple(p) for p in ps], out_meta)
