"""What the project's networks (the affinity U-Net, the FFN) share: their 3-D convolution,
weights as named arrays for one .npz file (`format`, JSON `meta`, `w{i}`/`b{i}` per layer,
checked against the layer list on the way back) and the Adam step their training loops take."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

Params = list[tuple[Any, Any]]
Layer = tuple[int, int, tuple[int, ...]]
"""(in channels, out channels, kernel shape) of one convolution."""


def to_arrays(fmt: str, meta: dict[str, Any], params: Params) -> dict[str, np.ndarray]:
    """Weights as named arrays (for npz), metadata as a JSON string array."""
    out: dict[str, np.ndarray] = {"format": np.array(fmt), "meta": np.array(json.dumps(meta))}
    for i, (w, b) in enumerate(params):
        out[f"w{i}"] = np.asarray(w, np.float32)
        out[f"b{i}"] = np.asarray(b, np.float32)
    return out


def read_format(arrays: dict[str, np.ndarray], fmt: str) -> dict[str, Any]:
    """The metadata of arrays written by `to_arrays` in format `fmt` (else a ValueError)."""
    found = str(arrays.get("format", ""))
    if found != fmt:
        raise ValueError(f"format is {found!r}, expected {fmt!r}")
    meta: dict[str, Any] = json.loads(str(arrays.get("meta", "{}")))
    return meta


def read_params(arrays: dict[str, np.ndarray], spec: Sequence[Layer]) -> Params:
    """Each layer's weights and biases, checked against `spec`."""
    params: Params = []
    for i, (cin, cout, k) in enumerate(spec):
        w, b = arrays.get(f"w{i}"), arrays.get(f"b{i}")
        if w is None or b is None:
            raise ValueError(f"layer {i} is missing (w{i}/b{i})")
        if tuple(w.shape) != (cout, cin, *k) or tuple(b.shape) != (cout,):
            raise ValueError(f"layer {i} has shape {tuple(w.shape)}, expected "
                             f"{(cout, cin, *k)}")
        params.append((np.asarray(w, np.float32), np.asarray(b, np.float32)))
    return params


def adam(ps: Any, opt: Any, g: Any, rate: float) -> tuple[Any, Any]:
    """One Adam step (β 0.9 / 0.999, ε 1e-8) on a parameter tree; `opt` is (mu, nu, t)."""
    import jax
    import jax.numpy as jnp

    mu, nu, t = opt
    t = t + 1
    mu = jax.tree_util.tree_map(lambda a, b: 0.9 * a + 0.1 * b, mu, g)
    nu = jax.tree_util.tree_map(lambda a, b: 0.999 * a + 0.001 * b * b, nu, g)
    ps = jax.tree_util.tree_map(
        lambda p, a, b: p - rate * (a / (1 - 0.9**t)) / (jnp.sqrt(b / (1 - 0.999**t)) + 1e-8),
        ps, mu, nu)
    return ps, (mu, nu, t)


def conv3d(x: Any, p: tuple[Any, Any], dilation: int = 1) -> Any:
    """A 3-D convolution ("same" padding) of x (N, D, H, W, C), done as one 2-D
    convolution of the sections with their kz - 1 neighbours stacked as channels: XLA's
    2-D convolutions on the CPU run several times faster than its 3-D ones (same sums).
    `dilation` spreads the kernel's taps in y and x (not in z)."""
    import jax
    import jax.numpy as jnp

    w, b = p
    cout, cin, kz, ky, kx = w.shape
    n, d, h, wd, _c = x.shape
    if kz > 1:
        pz = kz // 2
        xp = jnp.pad(x, ((0, 0), (pz, pz), (0, 0), (0, 0), (0, 0)))
        x = jnp.concatenate([xp[:, dz:dz + d] for dz in range(kz)], axis=-1)
    k = jnp.transpose(w, (3, 4, 2, 1, 0)).reshape(ky, kx, kz * cin, cout)
    y = jax.lax.conv_general_dilated(x.reshape(n * d, h, wd, kz * cin), k, (1, 1), "SAME",
                                     rhs_dilation=(dilation, dilation),
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y.reshape(n, d, h, wd, cout) + b


def save_state(path: Path, state: Any, step: int, losses: Sequence[float] = ()) -> None:
    """A training state (any tree of arrays: weights, optimiser state), the steps done and
    the losses of the last steps in one .npz, written whole and then moved into place (a
    kill never leaves half a checkpoint)."""
    import jax

    leaves = jax.tree_util.tree_leaves(state)
    arrays: dict[str, Any] = {f"leaf{i}": np.asarray(v) for i, v in enumerate(leaves)}
    arrays["step"] = np.int64(step)
    arrays["losses"] = np.asarray(list(losses), np.float64)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def load_state(path: Path, fresh: Any, what: str) -> tuple[Any, int, list[float]]:
    """A state saved by `save_state`, checked against the layout of `fresh` (the same tree
    as a new run would start from): (state, steps done, losses of the last steps). `what`
    names the training in the error."""
    import jax

    leaves, treedef = jax.tree_util.tree_flatten(fresh)
    try:
        with np.load(path, allow_pickle=False) as z:
            got = [z[f"leaf{i}"] for i in range(len(leaves))]
            step = int(z["step"])
            losses = [float(v) for v in z["losses"]] if "losses" in z.files else []
            extra = f"leaf{len(leaves)}" in z.files
    except (OSError, KeyError, ValueError) as e:
        raise ValueError(f"checkpoint {path} cannot be read as a {what} checkpoint: {e}") from e
    if extra:
        raise ValueError(f"checkpoint {path} holds more arrays than a {what} checkpoint")
    for i, (g, f) in enumerate(zip(got, leaves, strict=True)):
        if np.shape(g) != np.shape(f):
            raise ValueError(f"checkpoint {path}: array leaf{i} has shape {np.shape(g)}, "
                             f"expected {np.shape(f)} (a {what} checkpoint of another "
                             "network?)")
    return jax.tree_util.tree_unflatten(treedef, got), step, losses
