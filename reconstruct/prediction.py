"""Prediction of a whole volume slab by slab: affinities (the network), clefts (the classifier).

Each slab is predicted with a halo of sections around it wide enough that the result equals one
whole-volume prediction, so volumes of any depth stream through in bounded memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from connectome_query.reconstruct import affinity_net, boundary, io
from connectome_query.reconstruct.progress import Tick, no_progress

CLEFT_HALO = 4
"""Sections of context each side of a slab of cleft prediction (the classifier's filters)."""


def affinities_to_zarr(net: affinity_net.AffinityNet, img: np.ndarray, path: Path,
                       sections: int, augment: bool, tick: Tick = no_progress) -> None:
    """Affinities of `img` predicted `sections` at a time (each with the network's halo
    of sections around it, so the result equals one whole-volume prediction) into a zarr
    array (3, z, y, x) float32, never all in memory."""
    nz = img.shape[0]
    st = io.create_zarr(path, (3, *img.shape), "float32")
    hz = affinity_net.HALO[0]
    for z0 in range(0, nz, sections):
        z1 = min(z0 + sections, nz)
        tick(f"predicting affinities, sections {z0}-{z1}", 0.4 + 0.05 * z0 / nz)
        h0, h1 = max(z0 - hz, 0), min(z1 + hz, nz)
        a, _ = affinity_net.predict(net, img[h0:h1], augment=augment)
        st[:, z0:z1].write(a[:, z0 - h0:z1 - h0]).result()


def clefts_block(model: boundary.AffinityModel, img: np.ndarray,
                 vs: tuple[float, float, float], z0: int, z1: int) -> np.ndarray:
    """Cleft probability of sections [z0, z1) of `img`, with the classifier's halo of
    sections around them (equal to that part of `clefts`)."""
    h0, h1 = max(z0 - CLEFT_HALO, 0), min(z1 + CLEFT_HALO, img.shape[0])
    p = boundary.probabilities(model, img[h0:h1], vs)
    return p[boundary.CLS_CLEFT, z0 - h0:z1 - h0]


def clefts(model: boundary.AffinityModel, img: np.ndarray, vs: tuple[float, float, float],
           tick: Tick = no_progress, slab: int = 64, store: Any = None) -> np.ndarray | None:
    """Cleft probability from the voxel classifier, slab by slab with a halo of sections
    (affinities come from the network, `affinity_net`): returned whole, or written into
    `store` (a TensorStore of the image's shape, float32) and None returned."""
    nz = img.shape[0]
    cleft = np.zeros(img.shape, np.float32) if store is None else None
    for z0 in range(0, nz, slab):
        z1 = min(z0 + slab, nz)
        tick(f"predicting clefts, sections {z0}-{z1}", 0.5 + 0.05 * z0 / nz)
        block = clefts_block(model, img, vs, z0, z1)
        if cleft is not None:
            cleft[z0:z1] = block
        else:
            store[z0:z1].write(np.ascontiguousarray(block, np.float32)).result()
    return cleft
