"""Synthetic EM volumes on the engine: the plan made once, every block rendered by a Dask task.

The driver plans the volume (`synth.make_plan`: cells, packing, synapses) and saves the plan's
stamps, synapses and vesicles sorted by the block their centre lies in (`_save_sorted`), so that a
task reads, memory-mapped, only those near its block. Each task renders its block with
`synth.render_box`, writes whole chunks of the image, the truth arrays and their Neuroglancer
copies, and returns a record of what the truth tables need (voxels per cell, cleft statistics, the
cell at each skeleton node). The driver then writes the truth tables and volume.json. The volume
equals `synthetic_em.write_synthetic_em`'s (one process, slab by slab) voxel for voxel and row
for row.
"""

from __future__ import annotations

import dataclasses
import functools
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorstore as ts

from connectome_query.reconstruct import io, synth, synthetic_em
from connectome_query.reconstruct.engine import cluster
from connectome_query.reconstruct.engine.grid import Box, Grid, Triple, inner_chunks
from connectome_query.reconstruct.engine.manifest import Manifest
from connectome_query.reconstruct.engine.runner import Engine, Record
from connectome_query.reconstruct.progress import Progress, Quiet
from connectome_query.reconstruct.synth.rendering import HALO

SYNTH_BLOCK: Triple = (32, 256, 256)
"""Default block: about 120 MB of a worker's memory to render (`render_box` holds some 40 bytes
per voxel of the block and its halo)."""
WORK = ".synth"
"""The folder of the plan's parts and the block records, inside the volume's, while it is made."""
_ARRAYS = {"image": ("image.zarr", "uint8"), "labels": ("truth/segmentation.zarr", "uint64"),
           "compartments": ("truth/compartments.zarr", "uint8"),
           "clefts": ("truth/clefts.zarr", "uint64")}
_COPIES = {"labels": "truth/segmentation.precomputed", "image": "image.precomputed"}
_PRECOMPUTED_CHUNK = (32, 64, 64)


@dataclass(frozen=True)
class SynthJob:
    """What a block task knows: where to write and read, the grid, the plan's small part."""

    out_dir: str
    parts: str  # folder of the plan's stamps, synapses and vesicles, sorted by block
    block: Triple
    header: synth.Plan  # the plan without stamps, synapses and vesicles (sizes O(sections))
    reach: dict[str, Triple]  # per kind of part: voxels beyond a block whose parts it reads
    token: int  # tells this volume's arrays from another's at the same paths


def write_synthetic(out_dir: Path, cfg: synth.SynthConfig, spec: cluster.ClusterSpec,
                    block: Triple | None = None, progress: Progress | None = None
                    ) -> dict[str, Any]:
    """Write a synthetic EM directory (image + truth), its blocks rendered on Dask (a volume
    of one block, without a scheduler named: on a cluster of this process); returns
    volume.json."""
    progress = progress or Quiet()
    out = Path(out_dir)
    block = block or SYNTH_BLOCK
    work = out / WORK
    shutil.rmtree(work, ignore_errors=True)
    (out / "truth" / "skeletons").mkdir(parents=True, exist_ok=True)
    progress.stage("plan (cells, packing, synapses)", 1)
    plan = synth.make_plan(cfg)
    progress.advance("plan (cells, packing, synapses)")
    grid = Grid(cfg.shape_zyx, block)
    if len(grid) == 1 and spec.scheduler is None:  # one task: no worker processes to start
        spec = dataclasses.replace(spec, workers=1, processes=False)
    job = _save_plan(plan, grid, out, work / "plan")
    _create_arrays(out, cfg, block)
    with cluster.connect(spec, progress.note) as client:
        engine = Engine(client, Manifest(work), progress)
        records = engine.run("synth blocks", range(len(grid)), _render_task, job)
        n_lab = int(plan.stamp_label.max()) + 1 if len(plan.stamp_label) else 1
        sizes = np.zeros(n_lab, np.int64)
        stats = np.zeros((len(plan.synapses), 9))
        labels_at = np.zeros(len(plan.stamps), np.int64)
        for _, r in records:
            sizes[r["labels"]] += r["sizes"]
            stats[r["synapses"]] += r["cleft_stats"]
            labels_at[r["nodes"]] = r["node_labels"]
    vol = synthetic_em.write_synthetic_truth(out, plan, sizes, stats, labels_at)
    shutil.rmtree(work, ignore_errors=True)
    return vol


def _create_arrays(out: Path, cfg: synth.SynthConfig, block: Triple) -> None:
    """The volume's arrays, chunked so that every block writes whole chunks of its own."""
    vz, vy, vx = cfg.voxel_size_zyx
    shape = cfg.shape_zyx
    attrs = {"voxel_size_nm_xyz": [vx, vy, vz]}
    chunks = inner_chunks(block, io.CHUNK)
    for path, dtype in _ARRAYS.values():
        io.create_zarr(out / path, shape, dtype, chunks=chunks, attributes=attrs)
    pc = inner_chunks(block, _PRECOMPUTED_CHUNK)
    io.create_precomputed(out / _COPIES["labels"], shape, (vx, vy, vz), chunk_zyx=pc)
    io.create_precomputed(out / _COPIES["image"], shape, (vx, vy, vz), dtype="uint8",
                          kind="image", chunk_zyx=pc)


def _save_plan(plan: synth.Plan, grid: Grid, out: Path, folder: Path) -> SynthJob:
    """Save the plan's stamps, synapses and vesicles sorted by block; the job of the tasks."""
    folder.mkdir(parents=True, exist_ok=True)
    vs = np.array(plan.config.voxel_size_zyx, float)
    st = plan.stamps
    _save_sorted(folder, "stamps", st[:, :3] / vs, grid,
                 {"stamps": st, "label": plan.stamp_label, "comp": plan.stamp_comp})
    _save_sorted(folder, "synapses", plan.synapses[:, :3] / vs, grid,
                 {"synapses": plan.synapses, "pre": plan.synapse_pre, "post": plan.synapse_post})
    _save_sorted(folder, "vesicles", plan.vesicles / vs, grid,
                 {"vesicles": plan.vesicles, "label": plan.vesicle_label})
    r_max = float(st[:, 3].max()) if len(st) else 0.0
    halo = np.array(HALO)
    reach = {"stamps": r_max / vs + 2, "synapses": 60.0 / vs + 4, "vesicles": 30.0 / vs + 3}
    header = dataclasses.replace(
        plan, stamps=np.zeros((0, 4)), stamp_label=np.zeros(0, np.int64),
        stamp_comp=np.zeros(0, np.uint8), stamp_parent=np.zeros(0, np.int64),
        neuron_class={}, soma={}, synapses=np.zeros((0, 9)),
        synapse_pre=np.zeros(0, np.int64), synapse_post=np.zeros(0, np.int64),
        vesicles=np.zeros((0, 3)), vesicle_label=np.zeros(0, np.int64))
    voxels: dict[str, Triple] = {}
    for k, r in reach.items():
        z, y, x = (int(v) for v in np.ceil(r + halo))
        voxels[k] = (z, y, x)
    return SynthJob(str(out), str(folder), grid.block, header, voxels, time.time_ns())


def _save_sorted(folder: Path, kind: str, at: np.ndarray, grid: Grid,
                 columns: dict[str, np.ndarray]) -> None:
    """Columns of points (`at`: voxel coordinates) in the order of the block holding each
    (points outside the volume go to the nearest block), with where each block's start."""
    counts = np.array(grid.counts)
    cell = np.clip(np.floor(at).astype(np.int64) // np.array(grid.block), 0, counts - 1)
    number = np.ravel_multi_index(tuple(cell.T), grid.counts) if len(at) else \
        np.zeros(0, np.int64)
    order = np.argsort(number, kind="stable")
    np.save(folder / f"{kind}.starts.npy", np.searchsorted(number[order],
                                                           np.arange(len(grid) + 1)))
    np.save(folder / f"{kind}.row.npy", order)
    for name, col in columns.items():
        np.save(folder / f"{kind}.{name}.npy", col[order])


def _load_near(job: SynthJob, kind: str, box: Box, names: tuple[str, ...]
               ) -> dict[str, np.ndarray]:
    """The columns of the points of `kind` in the blocks within the job's reach of `box`,
    in the plan's order (`row`: their rows in the plan)."""
    folder = Path(job.parts)
    grid = Grid(job.header.config.shape_zyx, job.block)
    counts = np.array(grid.counts)
    reach = np.array(job.reach[kind])
    b0 = np.clip((np.array(box.lo) - reach) // np.array(job.block), 0, counts - 1)
    b1 = np.clip((np.array(box.hi) - 1 + reach) // np.array(job.block), 0, counts - 1)
    starts = np.load(folder / f"{kind}.starts.npy", mmap_mode="r")
    spans = [(int(starts[grid.number((z, y, int(b0[2])))]),
              int(starts[grid.number((z, y, int(b1[2]))) + 1]))
             for z in range(int(b0[0]), int(b1[0]) + 1)
             for y in range(int(b0[1]), int(b1[1]) + 1)]
    out: dict[str, np.ndarray] = {}
    for name in ("row", *names):
        col = np.load(folder / f"{kind}.{name}.npy", mmap_mode="r")
        out[name] = np.concatenate([np.asarray(col[a:b]) for a, b in spans])
    order = np.argsort(out["row"], kind="stable")
    return {k: v[order] for k, v in out.items()}


def _render_task(item: int, job: SynthJob) -> Record:
    """On a worker: render block `item`, write it, return what the truth tables need."""
    grid = Grid(job.header.config.shape_zyx, job.block)
    box = grid.box(item)
    st = _load_near(job, "stamps", box, ("stamps", "label", "comp"))
    sy = _load_near(job, "synapses", box, ("synapses", "pre", "post"))
    ve = _load_near(job, "vesicles", box, ("vesicles", "label"))
    near = dataclasses.replace(
        job.header, stamps=st["stamps"], stamp_label=st["label"], stamp_comp=st["comp"],
        stamp_parent=np.full(len(st["row"]), -1, np.int64), synapses=sy["synapses"],
        synapse_pre=sy["pre"], synapse_post=sy["post"], vesicles=ve["vesicles"],
        vesicle_label=ve["label"])
    part = synth.render_box(near, box.lo, box.hi, sy["row"])
    for name, (path, _) in _ARRAYS.items():
        _open(job, path, "zarr3")[box.slices()].write(getattr(part, name)).result()
    for name, path in _COPIES.items():
        (z0, y0, x0), (z1, y1, x1) = box.lo, box.hi
        data = np.ascontiguousarray(getattr(part, name).transpose(2, 1, 0))
        _open(job, path, "neuroglancer_precomputed")[x0:x1, y0:y1, z0:z1, 0].write(
            data).result()
    sizes = np.bincount(part.labels.ravel().astype(np.int64))
    labels = np.nonzero(sizes)[0]
    counted = np.nonzero(part.cleft_stats[:, 0])[0]
    at, _ = synth.stamp_voxels(near)
    mine = np.nonzero(box.contains(at))[0]
    v = at[mine] - np.array(box.lo)
    return {"labels": labels, "sizes": sizes[labels],
            "synapses": sy["row"][counted], "cleft_stats": part.cleft_stats[counted],
            "nodes": st["row"][mine],
            "node_labels": part.labels[v[:, 0], v[:, 1], v[:, 2]].astype(np.int64)}


@functools.lru_cache(maxsize=16)
def _opened(path: str, driver: str, token: int) -> Any:
    return ts.open({"driver": driver, "kvstore": {"driver": "file", "path": path},
                    "open": True}).result()


def _open(job: SynthJob, path: str, driver: str) -> Any:
    """An array of the volume, opened once per worker process and volume."""
    return _opened(str((Path(job.out_dir) / path).resolve()), driver, job.token)
