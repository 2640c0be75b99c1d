"""What every block task knows of its run (`Run`, small and picklable) and how it opens arrays.

Tasks open the run's arrays themselves (TensorStore; cached per worker process), read a block
with its halo clipped to the volume, and write whole shards or chunks of their own. The engine's
working arrays live in `RUN_DIR/engine/`, sharded by the block shape so that no two tasks ever
write one file; the run's outputs keep the run directory's chunking (`io.CHUNK`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from connectome_query.reconstruct import io, location
from connectome_query.reconstruct.align.masks import NO_DECISION, has
from connectome_query.reconstruct.engine.grid import Box, Grid, Triple, aligned, inner_chunks
from connectome_query.reconstruct.location import Where
from connectome_query.reconstruct.segment import SegParams

NET_BLOCK = (16, 64, 64)
"""The smallest block of the network's grid."""
NET_ALIGN = 4
"""In-plane multiple of the network grid's blocks: `affinity_net.align` of a stride-2 network
(2 for stride 1)."""


@dataclass(frozen=True)
class Run:
    """A run as its tasks see it."""

    run_dir: str
    em_dir: str  # a local path or an object-store URL (`location`)
    shape: Triple  # (z, y, x) voxels
    voxel_size_zyx: tuple[float, float, float]
    block: Triple
    params: SegParams = field(default_factory=SegParams)
    net_path: str | None = None
    augment: bool = False
    affinities_path: str | None = None  # affinities made elsewhere
    clefts: str = "network"  # or "classifier"
    model_path: str | None = None  # the voxel classifier (clefts = "classifier")
    truth: bool = False
    segmenter: str = "watershed"  # or "ffn"
    ffn_path: str | None = None  # the flood-filling network's weights (segmenter "ffn")
    defects_path: str | None = None  # the EM directory's defect flags (a prepared volume)
    adapter_path: str | None = None  # translates the image before every stage (`adapt`)
    restorer_path: str | None = None  # restores flagged voxels before every stage (`adapt`)
    image: str = "image.zarr"  # the EM image inside em_dir (`io.image_name`)

    @property
    def grid(self) -> Grid:
        return Grid(self.shape, self.block)

    @property
    def net_grid(self) -> Grid:
        """Blocks of the affinity network: in-plane a multiple of `NET_ALIGN`, so the pixel
        groups and pooling pairs of any shipped network are the same in every block, and at
        least `NET_BLOCK` (a small block would spend most of its work on the network's
        context)."""
        return Grid(self.shape, tuple(max(b, m) for b, m in  # type: ignore[arg-type]
                                      zip(aligned(self.block, (1, NET_ALIGN, NET_ALIGN)),
                                          NET_BLOCK, strict=True)))

    def path(self, name: str) -> Path:
        return Path(self.run_dir) / name

    @property
    def em_image(self) -> Where:
        """The EM directory's image (zarr v3 or neuroglancer precomputed, any location)."""
        return self.em_path(self.image)

    def em_path(self, *names: str) -> Where:
        """A file or array of the EM directory (any location)."""
        return location.join(self.em_dir, *names)

    @property
    def image_path(self) -> Where:
        """The image every stage reads: the EM directory's, its translation by the
        adapter (`RUN_DIR/translated.zarr`), or either with its flagged voxels restored
        (`RUN_DIR/restored.zarr`)."""
        if self.restorer_path:
            return self.path("restored.zarr")
        if self.adapter_path:
            return self.path("translated.zarr")
        return self.em_image

    def work(self, name: str) -> Path:
        return Path(self.run_dir) / "engine" / name

    @property
    def voxel_size_xyz(self) -> tuple[float, float, float]:
        vz, vy, vx = self.voxel_size_zyx
        return vx, vy, vz

    @property
    def attributes(self) -> dict[str, Any]:
        return {"voxel_size_nm_xyz": list(self.voxel_size_xyz)}


def create_sharded(path: Path, shape: Triple, block: Triple, dtype: str,
                   channels: int = 0, attributes: dict[str, Any] | None = None) -> None:
    """A working array (z, y, x) or (c, z, y, x) sharded by `block`; an existing one of the
    same metadata is kept (a resumed run)."""
    shard: Triple = tuple(min(b, s) for b, s in zip(block, shape, strict=True))  # type: ignore[assignment]
    lead = (channels,) if channels else ()
    io.create_zarr(path, (*lead, *shape), dtype, chunks=(*lead, *inner_chunks(shard)),
                   shards=(*lead, *shard), attributes=attributes, delete_existing=False)


@functools.lru_cache(maxsize=64)
def _open(path: str) -> Any:
    return io.open_array(location.parse(path))


def store(path: Where) -> Any:
    """An array of the run, opened once per worker process (until `forget`)."""
    return _open(str(path))


def forget() -> None:
    """Drop the opened arrays (a new run may have made new ones at the same paths)."""
    _open.cache_clear()


def read(path: Where, box: Box, what: str, channels: bool = False) -> np.ndarray:
    """A box of an array (all channels first when `channels`)."""
    idx = ((slice(None),) if channels else ()) + box.slices()
    return io.read_block(store(path), idx, path, what)


def write(path: Where, box: Box, data: np.ndarray, channels: bool = False) -> None:
    idx = ((slice(None),) if channels else ()) + box.slices()
    store(path)[idx].write(np.ascontiguousarray(data)).result()


def masked(run: Run, box: Box, before: bool = False) -> tuple[np.ndarray | None, Triple]:
    """Voxels of a box that no decision may come from (`masks.NO_DECISION`), or None when the
    volume has no defect masks; with `before`, also the plane before the box along each axis
    where there is one (the second value says along which: 1, or 0 at the volume's start)."""
    if run.defects_path is None:
        return None, (0, 0, 0)
    pad: Triple = tuple(int(before and lo > 0) for lo in box.lo)  # type: ignore[assignment]
    grown = Box(tuple(lo - p for lo, p in zip(box.lo, pad, strict=True)),  # type: ignore[arg-type]
                box.hi)
    flags = read(run.defects_path, grown, "defect masks")
    return has(flags, NO_DECISION), pad


def image_reader(run: Run) -> Any:
    """read(z, rows, cols) of the EM image (for `sections.prepared`)."""
    path = run.image_path
    st = store(path)

    def read_section(z: int, rows: slice, cols: slice) -> np.ndarray:
        return io.read_block(st, (z, rows, cols), path, "EM image")

    return read_section
