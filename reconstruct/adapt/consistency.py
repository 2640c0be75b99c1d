"""Segmentation-consistency terms (SECGAN): a frozen segmenter must read an A crop sent to style
B and back (`rec`) as it reads the crop itself (`src`).

Each term is the Kullback-Leibler divergence between the segmenter's sigmoid outputs on `src`
(held fixed) and on `rec`, per output voxel:
- `affinity_term`: the affinity network's three affinities and cleft channel;
- `ffn_term`: the flood-filling network's object mask after `FFN_ITERATIONS` updates from a
  seed (mask prior `P_EMPTY`, `P_SEED` at the seed) at each of `ffn_seeds` fixed places of the
  crop: what the FFN would grow there, which depends on membranes being continuous and dark,
  more than on their exact grey level.
Images are read as the segmenters read them: each section at zero mean and unit spread.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from connectome_query.reconstruct import affinity_net
from connectome_query.reconstruct.ffn import model as ffn_model

FFN_ITERATIONS = 2
"""Mask updates from each seed (the second sees the mask the first grew)."""


def section_normalised(x: Any) -> Any:
    """Each section of each crop (N, z, y, x) at zero mean and unit spread (as the
    segmenters read images; `sections.prepare`)."""
    import jax.numpy as jnp

    m = x.mean(axis=(2, 3), keepdims=True)
    s = jnp.sqrt(((x - m) ** 2).mean(axis=(2, 3), keepdims=True) + 1e-6)
    return (x - m) / s


def kl_of_logits(target_logits: Any, logits: Any) -> Any:
    """Mean KL divergence of Bernoulli(sigmoid(logits)) from the fixed
    Bernoulli(sigmoid(target_logits))."""
    import jax
    import jax.numpy as jnp

    t = jax.lax.stop_gradient(jax.nn.sigmoid(target_logits))
    bce = jnp.maximum(logits, 0) - logits * t + jnp.log1p(jnp.exp(-jnp.abs(logits)))
    ent = -(t * jnp.log(t + 1e-7) + (1 - t) * jnp.log(1 - t + 1e-7))
    return jnp.mean(bce - ent)


def affinity_term(seg: Any, src: Any, rec: Any) -> Any:
    """KL of the affinity network's outputs (`seg`: its parameters) on `rec` from those on
    `src` (crops (N, z, y, x) in [-1, 1])."""
    import jax

    t = jax.lax.stop_gradient(affinity_net.forward(seg, section_normalised(src)[:, None]))
    return kl_of_logits(t, affinity_net.forward(seg, section_normalised(rec)[:, None]))


def seed_points(shape_zyx: Sequence[int], count: int) -> list[tuple[int, int, int]]:
    """`count` fixed seed places in a crop of `shape_zyx`: the middle section, on a square
    grid in-plane (the first at the centre when `count` is 1)."""
    d, h, w = (int(v) for v in shape_zyx)
    side = int(np.ceil(np.sqrt(count)))
    ys = [int(h * (2 * i + 1) / (2 * side)) for i in range(side)]
    xs = [int(w * (2 * i + 1) / (2 * side)) for i in range(side)]
    return [(d // 2, y, x) for y in ys for x in xs][:count]


def _ffn_masks(params: Any, dilations: Sequence[int], img: Any, seeds: Sequence[tuple[int, int,
                                                                                         int]]
               ) -> Any:
    """FFN mask logits (N * seeds, z, y, x) grown from each seed in each crop."""
    import jax.numpy as jnp

    n = img.shape[0]
    prior = jnp.full(img.shape[1:], ffn_model.logit(ffn_model.P_EMPTY), img.dtype)
    masks = jnp.stack([prior.at[s].set(ffn_model.logit(ffn_model.P_SEED)) for s in seeds])
    mask = jnp.tile(masks, (n, 1, 1, 1))
    image = jnp.repeat(img, len(seeds), axis=0)
    for _ in range(FFN_ITERATIONS):
        mask = ffn_model.forward(params, image, mask, dilations)
    return mask


def ffn_term(params: Any, dilations: Sequence[int], seeds: int, src: Any, rec: Any) -> Any:
    """KL of the FFN's object masks grown on `rec` from those grown on `src` (crops
    (N, z, y, x) in [-1, 1]), from `seeds` fixed seed places per crop."""
    pts = seed_points(src.shape[1:], seeds)
    t = _ffn_masks(params, dilations, section_normalised(src), pts)
    return kl_of_logits(t, _ffn_masks(params, dilations, section_normalised(rec), pts))
