"""Affinities and cleft probability on the engine: the network (or the classifier) block by block.

Each block of the network's grid (`Run.net_grid`: in-plane a multiple of 4, so the U-Net's pixel
groups and pooling pairs are the same in every block) is prepared with the network's `halo` of
context (the volume reflected at its faces) and predicted in tiles that the smallest worker's
memory limit allows (`memory.prediction_tile`); the core is written to `affinities.zarr`
(3, z, y, x) and `clefts.zarr` (the network's cleft channel), sharded by the block. Where a CUDA
device exists, JAX runs the network on it (one worker per GPU). Clefts from the voxel
classifier instead (`clefts="classifier"`) are their own stage, with the classifier's filter
reach as halo.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from connectome_query.reconstruct import affinity_net, boundary, io
from connectome_query.reconstruct.engine import image, memory
from connectome_query.reconstruct.engine.context import Run, create_sharded, write
from connectome_query.reconstruct.engine.grid import Box
from connectome_query.reconstruct.engine.runner import Engine, Record

CLASSIFIER_HALO = (6, 16, 16)
"""Context of the voxel classifier's filters (Gaussians to 4 sigma: 5 sections, 13 pixels)."""


@functools.lru_cache(maxsize=2)
def _net(path: str) -> affinity_net.AffinityNet:
    return io.load_net(Path(path))


@functools.lru_cache(maxsize=2)
def _model(path: str) -> Any:
    return io.load_model(Path(path))


def _region(run: Run, box: Box, halo: tuple[int, int, int]) -> Box:
    return box.grow(halo, run.shape)


def _network_task(item: int, run: Run, sections_path: str, write_affs: bool,
                  write_clefts: bool, tile: tuple[int, int, int]) -> Record:
    """Predict one block of the network's grid in tiles of at most `tile`."""
    assert run.net_path is not None
    net = _net(run.net_path)
    stride = affinity_net.net_stride(net)
    box = run.net_grid.box(item)
    region = _region(run, box, affinity_net.halo(stride))
    sec = image.load(Path(sections_path))
    a = image.prepared(run, region, sec)
    pads = affinity_net.context_pads(box.lo, box.hi, region.lo, region.hi, run.shape, stride)
    affs, cleft = affinity_net.predict_region(net, affinity_net.pad_region(a, pads),
                                              run.augment, tile)
    core = tuple(slice(0, n) for n in box.shape)
    affs, cleft = affinity_net.finish(affs[(slice(None), *core)], cleft[core],
                                      (box.lo[0] == 0, box.lo[1] == 0, box.lo[2] == 0))
    if write_affs:
        write(run.path("affinities.zarr"), box, affs, channels=True)
    if write_clefts:
        write(run.path("clefts.zarr"), box, cleft)
    return {"cleft_max": np.array(cleft.max(initial=0.0), np.float32)}


def _classifier_task(item: int, run: Run, sections_path: str) -> Record:
    """Cleft probability of one block from the voxel classifier."""
    box = run.grid.box(item)
    region = _region(run, box, CLASSIFIER_HALO)
    sec = image.load(Path(sections_path))
    assert run.model_path is not None
    p = boundary.probabilities_of_prepared(_model(run.model_path),
                                           image.prepared(run, region, sec), run.voxel_size_zyx)
    core = box.slices(region.lo)
    write(run.path("clefts.zarr"), box, np.ascontiguousarray(p[boundary.CLS_CLEFT][core]))
    return {}


def worker_memory(engine: Engine) -> int:
    """The smallest memory limit of the cluster's workers (bytes); without limits, the
    machine's memory shared among them."""
    import psutil

    workers = engine.client.scheduler_info().get("workers", {}).values()
    limits = [int(w.get("memory_limit") or 0) for w in workers]
    if limits and min(limits) > 0:
        return min(limits)
    return int(psutil.virtual_memory().total / max(len(limits), 1))


def affinities_and_clefts(engine: Engine, run: Run, sections_path: Path) -> Path:
    """Predict what the run needs; returns the affinities' path (made elsewhere, or
    `affinities.zarr`)."""
    need_affs = run.affinities_path is None
    net_clefts = run.clefts == "network"
    if need_affs:
        create_sharded(run.path("affinities.zarr"), run.shape, run.net_grid.block, "float32",
                       channels=3, attributes=run.attributes)
    clefts_block = run.net_grid.block if net_clefts else run.block
    create_sharded(run.path("clefts.zarr"), run.shape, clefts_block, "float32",
                   attributes=run.attributes)
    if need_affs or net_clefts:
        assert run.net_path is not None
        stride = affinity_net.net_stride(_net(run.net_path))
        tile = memory.prediction_tile(run.net_grid.block, worker_memory(engine), stride)
        engine.run("affinities (network)", range(len(run.net_grid)), _network_task, run,
                   str(sections_path), need_affs, net_clefts, tile)
    if not net_clefts:
        engine.run("clefts (classifier)", range(len(run.grid)), _classifier_task, run,
                   str(sections_path))
    return Path(run.affinities_path) if run.affinities_path else run.path("affinities.zarr")
