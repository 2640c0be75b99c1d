"""What a worker's memory allows: the block of a run and the affinity network's prediction tile.

A worker's peak is its imports, the arrays of the block it works on and, while it predicts, the
network's activations on one tile with its context (`bench/reconstruct/network_memory.py`).
`default_block` picks the largest block whose stages fit a worker with the smallest tile;
`prediction_tile` then the largest tile that fits beside that block. Both keep the estimate
under `BUDGET` of the worker's memory limit, so the limit holds by construction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from connectome_query.reconstruct import affinity_net
from connectome_query.reconstruct.engine.grid import Triple

BUDGET = 0.85
"""Share of a worker's memory limit the estimated peak may use (Dask pauses a worker at 80 % and
ends it at 95 %; the estimate is above the measured peaks)."""
IMPORTS_BYTES = 400 * 2**20
"""A worker's resident memory after its imports (measured 225-322 MB) and the runtime's pools."""
COMPILE_BYTES = 300 * 2**20
"""What compiling and running the network adds whatever the tile (measured: about 450 MB with
the imports at two tile sizes)."""
BYTES_PER_VOXEL = 160
"""Peak bytes per voxel of its block a worker holds in the stages after prediction (the
segmentation passes, halos included; `bench/reconstruct/scale.py`)."""
PREDICT_BYTES_PER_VOXEL = 64
"""Bytes per voxel of its block the prediction task holds besides the tile: the prepared region
and its padded copy, the 4 output channels and the block's affinities and clefts."""
NET_BYTES_PER_VOXEL = {1: 1500, 2: 400}
"""The network's activations per voxel of a tile with its context, by in-plane stride
(measured: `bench/reconstruct/network_memory.py`)."""
BLOCKS = ((128, 512, 512), (64, 512, 512), (64, 256, 256), (32, 256, 256), (32, 128, 128),
          (16, 128, 128), (16, 64, 64))
TILES = ((64, 256, 256), (32, 256, 256), (32, 192, 192), (32, 128, 128), (16, 128, 128),
         (16, 96, 96), (16, 64, 64), (8, 64, 64))
"""Tile limits tried, largest first (larger tiles predict faster per voxel)."""


def tile_bytes(tile: Sequence[int], stride: int) -> int:
    """The network's activations on one tile core of `tile` with its context."""
    ctx = affinity_net.halo(stride)
    return math.prod(t + 2 * h for t, h in zip(tile, ctx, strict=True)) * \
        NET_BYTES_PER_VOXEL[stride]


def prediction_peak(block: Sequence[int], tile: Sequence[int], stride: int) -> int:
    """Estimated peak bytes of a worker predicting a block of `block` in tiles of at most
    `tile` (the tile actually used: `affinity_net.tile_shape`)."""
    used = affinity_net.tile_shape(block, tile, stride)
    return (IMPORTS_BYTES + COMPILE_BYTES + math.prod(block) * PREDICT_BYTES_PER_VOXEL
            + tile_bytes(used, stride))


def prediction_tile(block: Sequence[int], worker_memory: int, stride: int) -> Triple:
    """The largest of `TILES` whose prediction of a block of `block` fits in `BUDGET` of
    `worker_memory`, or the smallest."""
    for t in TILES:
        if prediction_peak(block, t, stride) <= BUDGET * worker_memory:
            return t
    return TILES[-1]


def default_block(shape: Triple, worker_memory: int, stride: int = 1) -> Triple:
    """The largest of `BLOCKS` whose stages fit in `BUDGET` of a worker's memory (the
    prediction with the smallest tile included), clipped to the volume."""
    b = BLOCKS[-1]
    for b in BLOCKS:
        clipped = tuple(min(x, s) for x, s in zip(b, shape, strict=True))
        fits = IMPORTS_BYTES + math.prod(clipped) * BYTES_PER_VOXEL <= BUDGET * worker_memory
        if fits and prediction_peak(clipped, TILES[-1], stride) <= BUDGET * worker_memory:
            break
    return tuple(min(x, s) for x, s in zip(b, shape, strict=True))  # type: ignore[return-value]
