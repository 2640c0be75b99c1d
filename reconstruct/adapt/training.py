"""Training the adapter unpaired (resumable; no CLI): CycleGAN losses and SECGAN's segmentation
term.

Each step draws crops of style-A volumes and, independently, of style-B volumes (images only: no
truth of B is read). The generators minimise
- the least-squares adversarial loss of their translations against the discriminators,
- `cycle` times the L1 cycle loss |g_ba(g_ab(a)) - a| + |g_ab(g_ba(b)) - b|, and
- `segmentation` times the segmentation-consistency loss: the frozen affinity network (the
  segmenter the adapter serves) must predict the same affinities and clefts on an A crop sent
  to style B and back as on the crop itself (Kullback-Leibler divergence of the four sigmoid
  outputs per voxel). The cycle loss alone lets g_ba restore grey levels in ways the segmenter
  reads differently (a membrane's width, a cleft's darkness); this term ties g_ba's output to
  what the segmenter needs.
- optionally `ffn` times the same for the flood-filling network's object masks grown from a
  few fixed seeds (`consistency.ffn_term`), when the FFN segments.
The discriminators minimise the least-squares loss on real crops and on the generators' current
translations. Checkpoints hold all four networks, both optimisers' state, the step and the last
losses; a resumed run draws the same crops as an unbroken one.
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
from connectome_query.reconstruct.adapt import consistency, intensity, model

LOSSES = ("g_adv", "cycle", "seg", "d", "ffn")
"""Names of the losses logged per step: the generators' adversarial loss, the cycle loss,
the segmentation-consistency loss (affinity network), the discriminators' loss, the FFN's
consistency loss (0 without the FFN term)."""


@dataclass(frozen=True)
class TrainConfig:
    """Settings of a training run."""

    crop: tuple[int, int, int] = (4, 64, 64)
    batch: int = 2
    lr: float = 2e-4
    cycle: float = 10.0
    segmentation: float = 1.0
    seed: int = 0
    checkpoint_every: int = 25
    d_lr: float | None = None  # the discriminators' learning rate (default: lr)
    ffn: float = 0.0  # weight of the FFN's consistency term (0: left out)
    ffn_seeds: int = 4  # FFN seeds per crop

    def check(self) -> None:
        d, h, w = self.crop
        if d < 1 or h < 16 or w < 16 or h % 4 or w % 4:
            raise ValueError(f"crop must be (z >= 1, y, x) with y and x multiples of 4 and at "
                             f"least 16, got {self.crop}")
        if self.batch < 1 or self.checkpoint_every < 1:
            raise ValueError("batch and checkpoint_every must be at least 1")
        if not self.lr > 0 or (self.d_lr is not None and not self.d_lr > 0):
            raise ValueError(f"lr and d_lr must be positive, got {self.lr}, {self.d_lr}")
        if self.cycle < 0 or self.segmentation < 0 or self.ffn < 0:
            raise ValueError(f"loss weights must be >= 0, got cycle {self.cycle}, "
                             f"segmentation {self.segmentation}, ffn {self.ffn}")
        if self.ffn_seeds < 1:
            raise ValueError(f"ffn_seeds must be at least 1, got {self.ffn_seeds}")


def _crop(vols: Sequence[np.ndarray], rng: np.random.Generator,
          crop: tuple[int, int, int]) -> np.ndarray:
    d, h, w = crop
    v = vols[int(rng.integers(len(vols)))]
    z0, y0, x0 = (int(rng.integers(0, s - c + 1)) for s, c in zip(v.shape, crop, strict=True))
    c = v[z0:z0 + d, y0:y0 + h, x0:x0 + w]
    if rng.random() < 0.5:
        c = c[:, ::-1]
    if rng.random() < 0.5:
        c = c[:, :, ::-1]
    if h == w and rng.random() < 0.5:
        c = c.transpose(0, 2, 1)
    return model.to_unit(np.ascontiguousarray(c))


def batches(a_vols: Sequence[np.ndarray], b_vols: Sequence[np.ndarray], cfg: TrainConfig,
            step: int) -> tuple[np.ndarray, np.ndarray]:
    """The A and B crops (batch, z, y, x) of one step, in [-1, 1] (drawn from the seed and
    the step alone, so that a resumed run draws what an unbroken one would)."""
    rng = np.random.default_rng([cfg.seed, step])
    a = np.stack([_crop(a_vols, rng, cfg.crop) for _ in range(cfg.batch)])
    b = np.stack([_crop(b_vols, rng, cfg.crop) for _ in range(cfg.batch)])
    return a, b


def losses_fn(gen: dict[str, Any], disc: dict[str, Any], seg: Any, a: Any, b: Any,
              cfg_cycle: float, cfg_seg: float, ffn: Any = None, cfg_ffn: float = 0.0,
              ffn_dilations: tuple[int, ...] = (), ffn_seeds: int = 4
              ) -> tuple[Any, dict[str, Any]]:
    """The generators' total loss and each term, for A crops `a` and B crops `b` (`seg`,
    `ffn`: the frozen segmenters' parameters, None to leave their term out)."""
    import jax.numpy as jnp

    fake_b = model.generate(gen["g_ab"], a)
    rec_a = model.generate(gen["g_ba"], fake_b)
    fake_a = model.generate(gen["g_ba"], b)
    rec_b = model.generate(gen["g_ab"], fake_a)
    adv = (jnp.mean((model.discriminate(disc["d_b"], fake_b) - 1.0) ** 2)
           + jnp.mean((model.discriminate(disc["d_a"], fake_a) - 1.0) ** 2))
    cyc = jnp.mean(jnp.abs(rec_a - a)) + jnp.mean(jnp.abs(rec_b - b))
    sc = jnp.zeros(()) if seg is None or cfg_seg == 0 else \
        consistency.affinity_term(seg, a, rec_a)
    fc = jnp.zeros(()) if ffn is None or cfg_ffn == 0 else \
        consistency.ffn_term(ffn, ffn_dilations, ffn_seeds, a, rec_a)
    total = adv + cfg_cycle * cyc + cfg_seg * sc + cfg_ffn * fc
    return total, {"g_adv": adv, "cycle": cyc, "seg": sc, "ffn": fc, "fake_a": fake_a,
                   "fake_b": fake_b}


def _d_loss(disc: dict[str, Any], a: Any, b: Any, fake_a: Any, fake_b: Any) -> Any:
    import jax.numpy as jnp

    def ls(d: Any, real: Any, fake: Any) -> Any:
        return 0.5 * (jnp.mean((model.discriminate(d, real) - 1.0) ** 2)
                      + jnp.mean(model.discriminate(d, fake) ** 2))

    return ls(disc["d_a"], a, fake_a) + ls(disc["d_b"], b, fake_b)


@functools.lru_cache(maxsize=4)
def _step(cfg_cycle: float, cfg_seg: float, with_seg: bool, cfg_ffn: float = 0.0,
          ffn_dilations: tuple[int, ...] = (), ffn_seeds: int = 4) -> Callable[..., Any]:
    """One compiled step: the generators' Adam step, then the discriminators' on the
    translations of the same crops."""
    import jax

    def step(gen: Any, disc: Any, opt_g: Any, opt_d: Any, seg: Any, ffn: Any, a: Any, b: Any,
             rate: float, d_rate: float) -> Any:
        s = seg if with_seg else None
        (_, parts), g = jax.value_and_grad(losses_fn, has_aux=True)(
            gen, disc, s, a, b, cfg_cycle, cfg_seg, ffn, cfg_ffn, ffn_dilations, ffn_seeds)
        gen, opt_g = weights.adam(gen, opt_g, g, rate)
        fa = jax.lax.stop_gradient(parts["fake_a"])
        fb = jax.lax.stop_gradient(parts["fake_b"])
        d_val, gd = jax.value_and_grad(_d_loss)(disc, a, b, fa, fb)
        disc, opt_d = weights.adam(disc, opt_d, gd, d_rate)
        logged = {"g_adv": parts["g_adv"], "cycle": parts["cycle"], "seg": parts["seg"],
                  "d": d_val, "ffn": parts["ffn"]}
        return gen, disc, opt_g, opt_d, logged

    return jax.jit(step)


def initial_state(seed: int, width: int = model.WIDTH,
                  curves: tuple[np.ndarray, np.ndarray] | None = None,
                  init: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fresh networks and optimiser state (numpy): each generator is its grey-level curve
    (`curves`: B -> A and A -> B values at the knots; default the identity) with a zero
    residual."""
    rng = np.random.default_rng([seed, 27])
    gs, ds = model.generator_layers(width), model.discriminator_layers(width)
    ident = intensity.knots()
    ba, ab = curves if curves is not None else (ident, ident)
    gen = {}
    for name, values in (("g_ab", ab), ("g_ba", ba)):
        g = model.init(gs, rng)
        g[0] = intensity.layer(values)
        g[-1] = (np.zeros_like(g[-1][0]), g[-1][1])
        gen[name] = g
    disc = {"d_a": model.init(ds, rng), "d_b": model.init(ds, rng)}
    return {"gen": gen, "disc": disc, "opt_g": _zeros(gen), "opt_d": _zeros(disc), "step": 0,
            "losses": [], "init": dict(init or {})}


def fresh_state(a_vols: Sequence[np.ndarray], b_vols: Sequence[np.ndarray],
                cfg: TrainConfig) -> dict[str, Any]:
    """The state a new run starts from: curves by quantile matching, their polarity chosen so
    that thin structures in B crops come out dark as in A crops
    (`intensity.initial_curves`)."""
    rng = np.random.default_rng([cfg.seed, 1])
    a_crops = np.stack([_crop(a_vols, rng, cfg.crop) for _ in range(8)])
    b_crops = np.stack([_crop(b_vols, rng, cfg.crop) for _ in range(8)])
    ba, ab, info = intensity.initial_curves(a_crops, b_crops, a_vols, b_vols)
    return initial_state(cfg.seed, curves=(ba, ab), init=info)


def _zeros(tree: dict[str, Any]) -> tuple[Any, Any, Any]:
    import jax

    z = jax.tree_util.tree_map(np.zeros_like, tree)
    return z, jax.tree_util.tree_map(np.zeros_like, tree), np.float32(0)


def save_checkpoint(path: Path, state: dict[str, Any], meta: dict[str, Any]) -> None:
    """All networks, both optimisers, the step and the recent losses, in one .npz."""
    import jax

    tree = (state["gen"], state["disc"], state["opt_g"], state["opt_d"])
    leaves = jax.tree_util.tree_leaves(tree)
    arrays: dict[str, Any] = {f"leaf{i}": np.asarray(v) for i, v in enumerate(leaves)}
    arrays["step"] = np.int64(state["step"])
    arrays["losses"] = np.asarray(state["losses"][-50:], np.float64).reshape(-1, len(LOSSES))
    arrays["meta"] = np.array(json.dumps(meta))
    arrays["init"] = np.array(json.dumps(state.get("init", {})))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def load_checkpoint(path: Path, seed: int, width: int = model.WIDTH) -> dict[str, Any]:
    """A state saved by `save_checkpoint` (checked against fresh networks' layout)."""
    import jax

    fresh = initial_state(seed, width)
    tree = (fresh["gen"], fresh["disc"], fresh["opt_g"], fresh["opt_d"])
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    try:
        with np.load(path, allow_pickle=False) as z:
            got = [z[f"leaf{i}"] for i in range(len(leaves))]
            step = int(z["step"])
            # logs written before the FFN term had four columns
            losses = [[*r, *[0.0] * (len(LOSSES) - len(r))] for r in z["losses"].tolist()]
            init = json.loads(str(z["init"]))
    except (OSError, KeyError, ValueError) as e:
        raise ValueError(f"checkpoint {path} cannot be read as an adapter training "
                         f"checkpoint: {e}") from e
    for i, (g, f) in enumerate(zip(got, leaves, strict=True)):
        if np.shape(g) != np.shape(f):
            raise ValueError(f"checkpoint {path}: array leaf{i} has shape {np.shape(g)}, "
                             f"expected {np.shape(f)} (another width?)")
    gen, disc, opt_g, opt_d = jax.tree_util.tree_unflatten(treedef, got)
    return {"gen": gen, "disc": disc, "opt_g": opt_g, "opt_d": opt_d, "step": step,
            "losses": losses, "init": init}


def train(a_vols: Sequence[np.ndarray], b_vols: Sequence[np.ndarray], steps: int,
          checkpoint: Path, segmenter: affinity_net.AffinityNet | None,
          cfg: TrainConfig = TrainConfig(), log: Path | None = None,
          tick: Callable[[int, dict[str, float]], None] = lambda i, losses: None,
          meta: dict[str, Any] | None = None, ffn: Any = None) -> model.Adapter:
    """Train for `steps` steps in all (resuming from `checkpoint` when it exists), saving it
    every `cfg.checkpoint_every` steps; each step's losses are appended to `log` (JSON
    lines). `segmenter` None leaves out the segmentation term (plain CycleGAN); `ffn` (a
    flood-filling network, `ffn.model.FFN`) adds its consistency term when `cfg.ffn` > 0."""
    import jax
    import jax.numpy as jnp

    cfg.check()
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    for name, vols in (("A", a_vols), ("B", b_vols)):
        if not vols:
            raise ValueError(f"training needs at least one style-{name} volume")
        for v in vols:
            if v.dtype != np.uint8 or v.ndim != 3:
                raise ValueError(f"style-{name} volumes must be uint8 (z, y, x), got "
                                 f"{v.dtype} {v.shape}")
            if any(s < c for s, c in zip(v.shape, cfg.crop, strict=True)):
                raise ValueError(f"style-{name} volume of shape {v.shape} is smaller than "
                                 f"the crop {cfg.crop}")
    as_jax = functools.partial(jax.tree_util.tree_map, jnp.asarray)
    seg = None if segmenter is None else as_jax(list(segmenter.params))
    if cfg.ffn > 0 and ffn is None:
        raise ValueError("the FFN consistency weight is above 0 but no FFN was given")
    use_ffn = ffn is not None and cfg.ffn > 0
    ffn_params = as_jax(list(ffn.params)) if use_ffn else None
    ffn_dil = tuple(int(v) for v in ffn.dilations) if use_ffn else ()
    state = load_checkpoint(checkpoint, cfg.seed) if checkpoint.exists() else \
        fresh_state(a_vols, b_vols, cfg)
    gen, disc = as_jax(state["gen"]), as_jax(state["disc"])
    opt_g, opt_d = as_jax(state["opt_g"]), as_jax(state["opt_d"])
    step = _step(float(cfg.cycle), float(cfg.segmentation), seg is not None,
                 float(cfg.ffn) if use_ffn else 0.0, ffn_dil, cfg.ffn_seeds)
    losses: list[list[float]] = list(state["losses"])
    meta = dict(meta or {})
    for i in range(int(state["step"]), steps):
        a, b = batches(a_vols, b_vols, cfg, i)
        gen, disc, opt_g, opt_d, logged = step(gen, disc, opt_g, opt_d, seg, ffn_params,
                                               jnp.asarray(a),
                                               jnp.asarray(b), cfg.lr,
                                               cfg.lr if cfg.d_lr is None else cfg.d_lr)
        row = {k: float(logged[k]) for k in LOSSES}
        losses.append([row[k] for k in LOSSES])
        if log is not None:
            with open(log, "a") as fh:
                fh.write(json.dumps({"step": i + 1, **row}) + "\n")
        tick(i, row)
        if (i + 1) % cfg.checkpoint_every == 0 or i + 1 == steps:
            save_checkpoint(checkpoint, {"gen": gen, "disc": disc, "opt_g": opt_g,
                                         "opt_d": opt_d, "step": i + 1, "losses": losses,
                                         "init": state["init"]},
                            meta)
    recent = np.asarray(losses[-25:], float).reshape(-1, len(LOSSES))
    out_meta = {**meta, "steps": steps, "width": model.WIDTH, "crop_zyx": list(cfg.crop),
                "batch": cfg.batch, "lr": cfg.lr, "d_lr": cfg.d_lr or cfg.lr,
                "cycle_weight": cfg.cycle,
                "segmentation_weight": cfg.segmentation if segmenter is not None else 0.0,
                "ffn_weight": cfg.ffn if use_ffn else 0.0, "ffn_seeds": cfg.ffn_seeds,
                "seed": cfg.seed, "intensity_init": state["init"],
                "final_losses": {k: float(recent[:, j].mean()) if len(recent) else None
                                 for j, k in enumerate(LOSSES)}}
    as_np = functools.partial(jax.tree_util.tree_map, np.asarray)
    g = as_np(gen)
    return model.Adapter([tuple(p) for p in g["g_ba"]], [tuple(p) for p in g["g_ab"]],
                         out_meta)
