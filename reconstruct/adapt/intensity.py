"""The generators' grey-level curve (a piecewise-linear look-up table) and its initialisation.

Styles differ first in a global grey-level mapping, which need not be monotone: style B shows
membranes bright where style A shows them dark. A U-Net trained adversarially from random
weights does not find such an inversion (a cycle can be closed without it), so each generator
starts with a curve over `KNOTS` grey levels and a zero residual: the curve is initialised by
quantile matching of the source styles' grey levels to the target's, either order-preserving
or order-reversing. Which of the two B -> A starts from is chosen without any truth: thin
structures (membranes) must come out dark, as in A, so the polarity whose B crops' ratio of
black to white top-hat is closer to A crops' wins; A -> B takes the same polarity. Both curves
stay trainable. (The frozen segmenter's confidence or output statistics on the two candidates
differ by under 2 % on these styles, too little to choose by.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

KNOTS = 33
"""Grey levels, evenly spaced over [-1, 1], at which a curve's value is learnt."""
TOPHAT = 5
"""In-plane size (pixels) of the top-hats that judge whether thin structures are dark."""
LIMIT = 0.98
"""Largest magnitude of an initial curve value (kept off tanh's saturation)."""


def knots() -> np.ndarray:
    """The curve's grey levels in [-1, 1]."""
    return np.linspace(-1.0, 1.0, KNOTS, dtype=np.float32)


def basis(x: Any) -> Any:
    """Hat-function weights (..., KNOTS) of grey levels x in [-1, 1]: a 1x1 convolution of
    them is the piecewise-linear curve through its weights."""
    import jax.numpy as jnp

    step = 2.0 / (KNOTS - 1)
    return jnp.maximum(0.0, 1.0 - jnp.abs(x[..., None] - jnp.asarray(knots())) / step)


def layer(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The curve's 1x1 convolution (KNOTS -> 1) whose tanh passes through `values`."""
    v = np.clip(np.asarray(values, np.float64), -LIMIT, LIMIT)
    w = np.arctanh(v).astype(np.float32).reshape(1, KNOTS, 1, 1, 1)
    return w, np.zeros(1, np.float32)


def matched(src: Sequence[np.ndarray], dst: Sequence[np.ndarray], inverted: bool) -> np.ndarray:
    """Curve values at the knots mapping the grey levels of `src` (uint8 volumes) onto those
    of `dst` by quantile, order-reversing when `inverted`; in [-1, 1]."""
    s = np.sort(np.concatenate([np.asarray(v, np.float32).ravel() for v in src]))
    d = np.concatenate([np.asarray(v, np.float32).ravel() for v in dst])
    levels = (knots() + 1.0) * 127.5
    p = np.searchsorted(s, levels, side="right") / s.size
    p = np.clip(p, 0.0, 1.0)
    q = np.quantile(d, 1.0 - p if inverted else p)
    return (q / 127.5 - 1.0).astype(np.float32)


def thin_dark_ratio(crops: np.ndarray) -> float:
    """How much more thin structure is darker than its surroundings than brighter, in images
    (..., y, x): the mean black top-hat over the mean white top-hat, per section over
    `TOPHAT` pixels in-plane. Above 1 in style A (membranes are thin dark lines); an
    order-preserving curve keeps which side of 1 an image is on, an order-reversing one
    swaps it."""
    from scipy import ndimage

    x = np.asarray(crops, np.float64)
    size = (1,) * (x.ndim - 2) + (TOPHAT, TOPHAT)
    dark = ndimage.black_tophat(x, size=size).mean()
    bright = ndimage.white_tophat(x, size=size).mean()
    return float(dark / max(bright, 1e-9))


def initial_curves(a_crops: np.ndarray, b_crops: np.ndarray, a_vols: Sequence[np.ndarray],
                   b_vols: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray,
                                                         dict[str, Any]]:
    """B -> A and A -> B curve values at the knots, and how the polarity was chosen: the one
    under which B crops (N, z, y, x in [-1, 1]) read through the B -> A curve have the thin
    dark-to-bright ratio closest (in log) to that of A crops."""
    target = np.log(thin_dark_ratio(a_crops))
    gap = {}
    for inv in (False, True):
        curve = matched(b_vols, a_vols, inv)
        mapped = np.interp(b_crops, knots(), curve)
        gap[inv] = abs(np.log(thin_dark_ratio(mapped)) - target)
    inverted = bool(gap[True] < gap[False])
    info = {"knots": KNOTS, "thin_dark_ratio_a": float(np.exp(target)),
            "log_gap_order_kept": float(gap[False]), "log_gap_inverted": float(gap[True]),
            "inverted": inverted}
    return matched(b_vols, a_vols, inverted), matched(a_vols, b_vols, inverted), info
