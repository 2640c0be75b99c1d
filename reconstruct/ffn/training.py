"""Training the flood-filling network on synthetic volumes (resumable; no CLI).

Each step takes a batch of seeds at object centres (voxels at least `SEED_DEPTH_NM` inside a cell,
the cell drawn uniformly so thin axons count as much as somata). The network first sees the FOV
centred on the seed with the seed-only mask; then, `moves` times, the FOV moves to the most probable
voxel of a face of the object mask predicted so far (face-max, as at inference, to a place not yet
visited) and the network sees the new FOV with the mask grown so far fed back (the recurrent mask
of the paper): every prediction is trained against the cell's mask (cross-entropy, Adam).
Checkpoints hold the weights, the optimiser's state and the step, and a run resumed from one
draws the same batches as an unbroken run.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from connectome_query.reconstruct import sections, synth, weights
from connectome_query.reconstruct.ffn import model
from connectome_query.reconstruct.ffn.inference import face_moves

FFN_TRAINING_SEED = 3_000_017
"""First seed of the FFN's synthetic training volumes (tests and benchmarks use small seeds)."""
SEED_DEPTH_NM = 20.0
VOXEL_SIZE = (40.0, 16.0, 16.0)


def region_half(moves: int) -> tuple[int, int, int]:
    """Half the region (z, y, x) one training step reads around its seed: the FOV's half and
    `moves` steps of `model.DELTA` (the padding of volumes trained with `moves`)."""
    return tuple(f // 2 + moves * d for f, d in  # type: ignore[return-value]
                 zip(model.FOV, model.DELTA, strict=True))


def check_room(vols: list[Volume], moves: int) -> None:
    """Refuse volumes where a seed's region (`region_half(moves)` either way) leaves the
    padded volume."""
    rhalf = region_half(moves)
    for v in vols:
        zyx = np.unravel_index(np.concatenate(v.cells), v.labels.shape)
        if any(int(c.min()) < h or int(c.max()) + h >= n
               for c, h, n in zip(zyx, rhalf, v.labels.shape, strict=True)):
            raise ValueError(f"a training volume of shape {v.labels.shape} is padded too little "
                             f"for a step's region with {moves} moves: pad it by "
                             f"region_half({moves}) = {rhalf}")


@dataclass
class Volume:
    image: np.ndarray  # prepared image, padded
    labels: np.ndarray  # padded
    cells: list[np.ndarray]  # per cell: flat indices (padded volume) of its seed voxels


def training_volumes(n: int, shape_zyx: tuple[int, int, int] = (48, 128, 128),
                     first_seed: int = FFN_TRAINING_SEED,
                     voxel_size_zyx: tuple[float, float, float] = VOXEL_SIZE,
                     pad: tuple[int, int, int] | None = None) -> list[Volume]:
    """Synthetic clean and noisy volumes in turn, prepared as at inference and padded (by
    default by half the region one step of `train` reads with one move, `region_half(1)`)."""
    pad = pad if pad is not None else region_half(1)
    out = []
    for k in range(n):
        s = synth.synthesize(synth.SynthConfig(shape_zyx, voxel_size_zyx,
                                               ("clean", "noisy")[k % 2], seed=first_seed + k))
        out.append(make_volume(sections.prepare(s.image), s.labels, voxel_size_zyx, pad))
    return out


def make_volume(image: np.ndarray, labels: np.ndarray, voxel_size_zyx: tuple[float, ...],
                pad: tuple[int, int, int]) -> Volume:
    p = [(q, q) for q in pad]
    img = np.pad(image.astype(np.float32), p)
    lab = np.pad(labels.astype(np.int64), p)
    depth = ndimage.distance_transform_edt(lab != 0, sampling=voxel_size_zyx)
    for ax in range(3):  # the inside of each cell: also away from other cells
        for sh in (1, -1):
            depth[np.roll(lab, sh, axis=ax) != lab] = 0
    ok = np.flatnonzero((depth >= SEED_DEPTH_NM) & (lab != 0))
    ids = lab.reshape(-1)[ok]
    order = np.argsort(ids, kind="stable")
    ok, ids = ok[order], ids[order]
    cuts = np.flatnonzero(np.diff(ids)) + 1
    cells = [c for c in np.split(ok, cuts) if len(c)]
    if not cells:
        raise ValueError("training volume has no voxel deep enough inside a cell to seed")
    return Volume(img, lab, cells)


def _augment(rng: np.random.Generator, *arrs: np.ndarray) -> list[np.ndarray]:
    flips = [ax for ax in (1, 2) if rng.random() < 0.5]
    tr = rng.random() < 0.5
    out = []
    for a in arrs:
        a = np.flip(a, flips) if flips else a
        out.append(np.ascontiguousarray(np.swapaxes(a, 1, 2) if tr else a))
    return out


def sample_regions(vols: list[Volume], rng: np.random.Generator, batch: int,
                   region: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Images and object masks (batch, *region) centred on seeds at object centres."""
    half = [r // 2 for r in region]
    imgs, tgts = [], []
    for _ in range(batch):
        v = vols[int(rng.integers(len(vols)))]
        cell = v.cells[int(rng.integers(len(v.cells)))]
        c = np.unravel_index(int(cell[int(rng.integers(len(cell)))]), v.labels.shape)
        sl = tuple(slice(int(p) - h, int(p) + h + 1) for p, h in zip(c, half, strict=True))
        img, lab = v.image[sl], v.labels[sl]
        gain = np.float32(rng.uniform(0.8, 1.2))
        img, tgt = _augment(rng, img * gain + np.float32(rng.normal(0, 0.1)),
                            (lab == lab[tuple(half)]).astype(np.float32))
        imgs.append(img)
        tgts.append(tgt)
    return np.stack(imgs), np.stack(tgts)


def next_centre(mask: np.ndarray, at: tuple[int, ...], visited: list[tuple[int, ...]],
                lo: tuple[int, ...], hi: tuple[int, ...], threshold: float,
                rng: np.random.Generator, delta: tuple[int, ...] = model.DELTA
                ) -> tuple[int, ...] | None:
    """Where the training FOV moves from `at`: one of the face-max moves of the mask (logits,
    `threshold` a logit) chosen at random, leaving out those within half a step of a centre
    already visited; None when there is none."""
    new = [m for m in face_moves(mask, at, delta, lo, hi, threshold)
           if all(max(abs(a - b) * 2 > d for a, b, d in zip(m, v, delta, strict=True))
                  for v in visited)]
    return new[int(rng.integers(len(new)))] if new else None


@functools.lru_cache(maxsize=2)
def _adam(dilations: tuple[int, ...]) -> Callable[..., Any]:
    """One compiled Adam step on the cross-entropy over the FOV, the object's voxels weighted
    `pos` times the others: (params, (mu, nu, t), image, mask, target, rate, pos) ->
    (params, opt, loss, logits)."""
    import jax
    import jax.numpy as jnp

    def loss_fn(ps: model.Params, img: Any, mask: Any, y: Any, pos: float) -> Any:
        lg = model.forward(ps, img, mask, dilations)
        bce = jnp.maximum(lg, 0) - lg * y + jnp.log1p(jnp.exp(-jnp.abs(lg)))
        w = 1.0 + (pos - 1.0) * y
        return (bce * w).sum() / w.sum(), lg

    @jax.jit
    def step(ps: model.Params, opt: Any, img: Any, mask: Any, y: Any, rate: float,
             pos: float) -> Any:
        (value, lg), g = jax.value_and_grad(loss_fn, has_aux=True)(ps, img, mask, y, pos)
        ps, opt = weights.adam(ps, opt, g, rate)
        return ps, opt, value, lg

    return step


def save_checkpoint(path: Path, params: model.Params, opt: Any, step: int,
                    meta: dict[str, Any], losses: list[float] | None = None) -> None:
    arrays: dict[str, Any] = {"step": np.int64(step), "meta": np.array(json.dumps(meta)),
                              "losses": np.asarray(losses or [], np.float64)}
    mu, nu, t = opt
    for i, (w, b) in enumerate(params):
        arrays[f"w{i}"], arrays[f"b{i}"] = np.asarray(w), np.asarray(b)
        arrays[f"mw{i}"], arrays[f"mb{i}"] = np.asarray(mu[i][0]), np.asarray(mu[i][1])
        arrays[f"vw{i}"], arrays[f"vb{i}"] = np.asarray(nu[i][0]), np.asarray(nu[i][1])
    arrays["t"] = np.asarray(t)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def load_checkpoint(path: Path, n_layers: int) -> tuple[model.Params, Any, int, list[float]]:
    """Weights, optimiser state, steps done and the losses of the last steps."""
    try:
        with np.load(path, allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}
        ps = [(a[f"w{i}"], a[f"b{i}"]) for i in range(n_layers)]
        mu = [(a[f"mw{i}"], a[f"mb{i}"]) for i in range(n_layers)]
        nu = [(a[f"vw{i}"], a[f"vb{i}"]) for i in range(n_layers)]
        return ps, (mu, nu, a["t"]), int(a["step"]), [float(v) for v in a.get("losses", [])]
    except (OSError, KeyError, ValueError) as e:
        raise ValueError(f"checkpoint {path} cannot be read as an FFN training checkpoint "
                         f"with {n_layers} layers: {e}") from e


def train(vols: list[Volume], steps: int, checkpoint: Path, batch: int = 4, lr: float = 1e-3,
          seed: int = 0, checkpoint_every: int = 25,
          tick: Callable[[int, float], None] = lambda i, loss: None,
          meta: dict[str, Any] | None = None, positive_weight: float = 1.0,
          init: model.Params | None = None, max_seconds: float | None = None,
          start: Callable[[int], None] = lambda done: None,
          dilations: tuple[int, ...] = model.DILATIONS, moves: int = 1) -> model.FFN:
    """Train up to step `steps` (each: the seed FOV, then `moves` FOVs moved along the
    prediction, the mask grown so far fed back; the volumes padded by `region_half(moves)`),
    resuming from `checkpoint` when it exists, else from `init` (or random weights); saves it
    every `checkpoint_every` steps. `start` hears the step resumed from; with `max_seconds`,
    training stops (checkpointed) after the first step that ends past it."""
    import time

    import jax.numpy as jnp

    if steps < 1 or batch < 1 or checkpoint_every < 1 or moves < 1:
        raise ValueError("steps, batch, checkpoint_every and moves must be at least 1")
    if not positive_weight > 0:
        raise ValueError(f"positive_weight must be positive, got {positive_weight}")
    fov, delta = model.FOV, model.DELTA
    n_layers = len(model.layers())
    meta = {**(meta or {}), "dilations": list(dilations)}
    history: list[str] = list(meta.get("history", []))
    if checkpoint.exists():
        ps, opt, done, losses = load_checkpoint(checkpoint, n_layers)
        with np.load(checkpoint, allow_pickle=False) as z:
            saved = json.loads(str(z["meta"]))
        history = list(saved.get("history", []))
        if list(saved.get("dilations", dilations)) != list(dilations):
            raise ValueError(f"checkpoint {checkpoint} was trained with dilations "
                             f"{saved['dilations']}, not {list(dilations)}")
    else:
        ps, done, losses = (init if init is not None else model.init_params(seed)), 0, []
        opt = ([(np.zeros_like(w), np.zeros_like(b)) for w, b in ps],
               [(np.zeros_like(w), np.zeros_like(b)) for w, b in ps], np.float32(0))
    params = [(jnp.asarray(w), jnp.asarray(b)) for w, b in ps]
    opt = (*[[(jnp.asarray(w), jnp.asarray(b)) for w, b in o] for o in opt[:2]],
           jnp.asarray(opt[2], jnp.float32))
    step = _adam(tuple(dilations))
    half = tuple(f // 2 for f in fov)
    rhalf = region_half(moves)
    region = (2 * rhalf[0] + 1, 2 * rhalf[1] + 1, 2 * rhalf[2] + 1)
    check_room(vols, moves)
    centre = rhalf
    lo = half
    hi = tuple(r - h for r, h in zip(region, half, strict=True))
    empty, seed_logit = model.logit(model.P_EMPTY), model.logit(model.P_SEED)
    thr = model.logit(0.9)
    start(done)
    first_step, t0 = done, time.perf_counter()

    def record(last: int) -> None:
        meta["history"] = [*history, f"steps {first_step + 1}-{last}: batch {batch}, lr {lr:g}, "
                           f"object voxels weighted {positive_weight:g}x"
                           + (f", {moves} moves" if moves > 1 else "")]

    def crop(c: tuple[int, ...]) -> tuple[slice, ...]:
        return tuple(slice(p - h, p + h + 1) for p, h in zip(c, half, strict=True))

    meta["history"] = history
    i = done - 1
    for i in range(done, steps):
        rng = np.random.default_rng([seed, i])
        img, tgt = sample_regions(vols, rng, batch, region)
        canvas = np.full(img.shape, empty, np.float32)
        canvas[:, centre[0], centre[1], centre[2]] = seed_logit
        sl1 = (slice(None), *crop(centre))
        params, opt, l1, lg = step(params, opt, img[sl1], canvas[sl1], tgt[sl1], lr,
                                   positive_weight)
        canvas[sl1] = np.asarray(lg)
        step_losses = [float(l1)]
        at: list[tuple[int, ...]] = [centre] * batch
        visited: list[list[tuple[int, ...]]] = [[centre] for _ in range(batch)]
        for _ in range(moves):
            crops = []
            for k in range(batch):
                nxt = next_centre(canvas[k], at[k], visited[k], lo, hi, thr, rng, delta)
                if nxt is not None:
                    at[k] = nxt
                    visited[k].append(nxt)
                crops.append(crop(at[k]))
            img2 = np.stack([img[k][crops[k]] for k in range(batch)])
            msk2 = np.stack([canvas[k][crops[k]] for k in range(batch)])
            tgt2 = np.stack([tgt[k][crops[k]] for k in range(batch)])
            params, opt, l2, lg = step(params, opt, img2, msk2, tgt2, lr, positive_weight)
            lg = np.asarray(lg)
            for k in range(batch):
                canvas[k][crops[k]] = lg[k]
            step_losses.append(float(l2))
        loss = float(np.mean(step_losses))
        losses.append(loss)
        tick(i, loss)
        record(i + 1)
        late = max_seconds is not None and time.perf_counter() - t0 > max_seconds
        if (i + 1) % checkpoint_every == 0 or i + 1 == steps or late:
            save_checkpoint(checkpoint, params, opt, i + 1, meta, losses[-25:])
        if late:
            break
    out_meta = {**meta, "train_moves": moves, "fov_zyx": list(fov), "delta_zyx": list(delta),
                "width": model.WIDTH,
                "modules": model.MODULES, "dilations": list(dilations),
                "steps": max(i + 1, done),
                "final_loss": float(np.mean(losses[-25:])) if losses else float("nan")}
    return model.FFN([(np.asarray(w), np.asarray(b)) for w, b in params], out_meta)
