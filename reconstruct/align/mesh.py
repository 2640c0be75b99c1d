"""An elastic spring mesh relaxed against flow targets (JAX; the same code on CPU and GPU).

The nodes of a section's grid are joined by springs to their 8 neighbours (horizontal,
vertical, diagonal) whose rest lengths come from a rest shape (the previous section's solved
mesh: a section is held to keep its neighbour's shape, not to be flat), and each node with a
measured flow is joined to its target by a zero-length spring. The springs are Hookean in
length, so the mesh may rotate and translate freely; minimising the energy with FIRE (fast
inertial relaxation, as SOFIMA does) lets good flows pull the mesh into place, smooths their
noise and carries the mesh over nodes whose flow was dropped (defects, weak peaks).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

_EDGES = ((0, 1), (1, 0), (1, 1), (1, -1))


@dataclass(frozen=True)
class MeshConfig:
    """Spring constants and the stopping rule of the relaxation."""

    k_flow: float = 1.0  # node to its flow target
    k_intra: float = 1.0  # node to its in-section neighbours (0.5 before the edge flows held)
    max_steps: int = 3000
    tolerance: float = 1e-3  # stop when no node feels a larger force (px)
    dt: float = 0.1
    dt_max: float = 0.8


def _pair(x: jax.Array, dy: int, dx: int) -> tuple[jax.Array, jax.Array]:
    gy, gx = x.shape[:2]
    if dx >= 0:
        return x[:gy - dy, :gx - dx], x[dy:, dx:]
    return x[:gy - dy, -dx:], x[dy:, :gx + dx]


def energy(x: jax.Array, target: jax.Array, weight: jax.Array, rest: jax.Array,
           k_flow: float, k_intra: float) -> jax.Array:
    """Elastic energy of node positions `x` (gy, gx, 2)."""
    e = 0.5 * k_flow * jnp.sum(weight[..., None] * (x - target) ** 2)
    for dy, dx in _EDGES:
        a, b = _pair(x, dy, dx)
        ra, rb = _pair(rest, dy, dx)
        length = jnp.sqrt(jnp.sum((b - a) ** 2, axis=-1) + 1e-12)
        rest_length = jnp.sqrt(jnp.sum((rb - ra) ** 2, axis=-1))
        k = k_intra / (rest_length + 1e-6) * jnp.mean(rest_length)  # stiffer short springs
        e = e + 0.5 * jnp.sum(k * (length - rest_length) ** 2)
    return e


@partial(jax.jit, static_argnames=("max_steps",))
def _fire(x0: jax.Array, target: jax.Array, weight: jax.Array, rest: jax.Array,
          k_flow: float, k_intra: float, tolerance: float, dt0: float, dt_max: float,
          max_steps: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    force = jax.grad(lambda x: -energy(x, target, weight, rest, k_flow, k_intra))
    alpha0, f_alpha, f_inc, f_dec, n_min = 0.1, 0.99, 1.1, 0.5, 5

    def fmax(f: jax.Array) -> jax.Array:
        return jnp.sqrt(jnp.max(jnp.sum(f * f, axis=-1)))

    def cond(s: tuple) -> jax.Array:
        return (s[6] < max_steps) & (s[7] > tolerance)

    def body(s: tuple) -> tuple:
        x, v, dt, alpha, npos, _, step, _ = s
        f = force(x)
        p = jnp.sum(f * v)
        up = p > 0
        npos = jnp.where(up, npos + 1, 0)
        grow = up & (npos > n_min)
        dt = jnp.where(grow, jnp.minimum(dt * f_inc, dt_max), jnp.where(up, dt, dt * f_dec))
        alpha = jnp.where(grow, alpha * f_alpha, jnp.where(up, alpha, alpha0))
        x = jnp.where(up, x, x - 0.5 * dt * v)
        v = jnp.where(up, v, 0.0)
        v = v + dt * f
        vn = jnp.sqrt(jnp.sum(v * v))
        fn = jnp.sqrt(jnp.sum(f * f)) + 1e-12
        v = (1 - alpha) * v + alpha * vn / fn * f
        x = x + dt * v
        return x, v, dt, alpha, npos, f, step + 1, fmax(f)

    init = (x0, jnp.zeros_like(x0), jnp.asarray(dt0, x0.dtype), jnp.asarray(alpha0, x0.dtype),
            jnp.asarray(0), jnp.zeros_like(x0), jnp.asarray(0), jnp.asarray(jnp.inf, x0.dtype))
    out = jax.lax.while_loop(cond, body, init)
    return out[0], out[6], out[7]


def relax(target: np.ndarray, weight: np.ndarray, rest: np.ndarray,
          start: np.ndarray | None = None, config: MeshConfig = MeshConfig()
          ) -> tuple[np.ndarray, int, float]:
    """Relax a mesh: node positions (gy, gx, 2) pulled to `target` where `weight` > 0, held to
    the shape of `rest`. Returns (positions, steps taken, largest remaining force)."""
    target = np.where(np.isfinite(target), target, rest)
    weight = np.where(np.isfinite(weight), weight, 0.0)
    x0 = target if start is None else start
    x, steps, f = _fire(jnp.asarray(x0, jnp.float32), jnp.asarray(target, jnp.float32),
                        jnp.asarray(weight, jnp.float32), jnp.asarray(rest, jnp.float32),
                        config.k_flow, config.k_intra, config.tolerance, config.dt,
                        config.dt_max, config.max_steps)
    return np.asarray(x, np.float64), int(steps), float(f)
