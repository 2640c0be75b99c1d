"""The FFN block by block on the engine: each block flood-filled with a margin of context, its
objects matched with its neighbours' in the overlap, one id space for the volume.

Each block's task segments its region (the block grown by `margin` per side, clipped to the volume)
with `inference.segment` and keeps the region's labels on the block alone (its core), as
provisional ids (`segment.stitch`) in a working array sharded by the block. Its record holds its
core objects' sizes and first voxels and, for each face, the region's labels in the slab that both
blocks beside the face segmented: `margin` planes either side of the face, across the face's extent
(in the least unsigned type that holds the region's labels; the record deflated). A faces task per
block pairs its objects with the block before it along each axis by voxel overlap in that slab: two
objects are one when each holds more than `fraction` of the other's voxels there (with a fraction
of one half, a one-to-one match: a merger in one block does not spread through the face). The
client joins the pairs with the watershed's union-find over provisional ids (`stitch.number`: never
voxels; objects under `min_size` in all dropped, the rest numbered by first voxel). With defect
masks, the segments that match across a run of wholly masked sections are then joined in that
numbering as the watershed's are (`engine.gaps`: one definition for both segmenters), and the
relabel pass writes the final ids tile by tile. With one block (and no such run) the answer is
`inference.segment`'s on the whole volume, ids included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Protocol

import fastremap
import numpy as np

from connectome_query.reconstruct import io
from connectome_query.reconstruct.engine import gaps
from connectome_query.reconstruct.engine.context import create_sharded, read, write
from connectome_query.reconstruct.engine.grid import Box, Grid, Triple, aligned
from connectome_query.reconstruct.engine.manifest import load_record
from connectome_query.reconstruct.engine.runner import Engine, Record
from connectome_query.reconstruct.engine.segmentation import (
    core_stats,
    load_numbering,
    save_numbering,
)
from connectome_query.reconstruct.ffn import inference, model
from connectome_query.reconstruct.segment import gaps as segment_gaps
from connectome_query.reconstruct.segment import stitch

OVERLAP_FRACTION = 0.5
"""Two objects of neighbouring blocks are one when each holds more than this share of the
other's voxels in the overlap."""
STAGE = "segmentation (ffn)"


class BlockInputs(Protocol):
    """What a block reads: picklable, opened on the worker."""

    def image(self, box: Box) -> np.ndarray: ...

    def boundary(self, box: Box) -> np.ndarray: ...

    def masked(self, box: Box) -> np.ndarray | None: ...

    def predictor(self) -> inference.Predictor: ...


@dataclass(frozen=True)
class Blockwise:
    """The blockwise FFN's settings for one volume (picklable: every task gets it)."""

    shape: Triple
    block: Triple
    margin: Triple
    voxel_size_zyx: tuple[float, float, float]
    work: str  # folder of the working array and the numbering
    params: inference.FFNParams = field(default_factory=inference.FFNParams)
    fov: Triple = model.FOV
    delta: Triple = model.DELTA
    fraction: float = OVERLAP_FRACTION

    @property
    def grid(self) -> Grid:
        return Grid(self.shape, self.block)

    @property
    def labels_path(self) -> Path:
        return Path(self.work) / "ffn.zarr"


def default_margin(fov: Sequence[int]) -> Triple:
    """Context beyond each face: half the FOV, so every FOV centred in the block sees the
    image, not the canvas's padding."""
    return int(fov[0]) // 2, int(fov[1]) // 2, int(fov[2]) // 2


def slab(box: Box, axis: int, at: int, margin: Triple, shape: Triple) -> Box:
    """The overlap of the face of `box` at plane `at` along `axis`: `margin` planes either
    side of it (clipped to the volume), across the box's extent in the other axes."""
    lo, hi = list(box.lo), list(box.hi)
    lo[axis], hi[axis] = max(at - margin[axis], 0), min(at + margin[axis], shape[axis])
    return Box(tuple(lo), tuple(hi))  # type: ignore[arg-type]


def overlap_pairs(a: np.ndarray, b: np.ndarray, fraction: float) -> np.ndarray:
    """Pairs (k, 2) of labels of two segmentations of one region (0: none) in which each
    label holds more than `fraction` of the other's voxels."""
    if a.shape != b.shape:
        raise ValueError(f"overlap of labels of shapes {a.shape} and {b.shape}")
    both = (a != 0) & (b != 0)
    if not both.any():
        return np.zeros((0, 2), np.uint64)
    la, ca = fastremap.unique(a[a != 0], return_counts=True)
    lb, cb = fastremap.unique(b[b != 0], return_counts=True)
    pairs, n = np.unique(np.stack([a[both], b[both]], axis=1).astype(np.uint64), axis=0,
                         return_counts=True)
    na = ca[np.searchsorted(la, pairs[:, 0])]
    nb = cb[np.searchsorted(lb, pairs[:, 1])]
    keep = (n > fraction * na) & (n > fraction * nb)
    return pairs[keep].reshape(-1, 2)


def _block_task(item: int, bw: Blockwise, inputs: BlockInputs) -> Record:
    box = bw.grid.box(item)
    region = box.grow(bw.margin, bw.shape)
    seg, counts = inference.segment(inputs.image(region), inputs.boundary(region),
                                    _Shifted(inputs.predictor(), region.lo), bw.voxel_size_zyx,
                                    bw.params, bw.fov, bw.delta)
    bad = inputs.masked(region)
    if bad is not None:  # no object passes through a defect
        seg = inference.cut_at_mask(seg, bad)
    local, rec = block_record(seg, box, region, bw.margin, bw.shape)
    write(bw.labels_path, box, stitch.provisional(item, local))
    return {**rec, **{k: np.array(v) for k, v in counts.items()}}


def block_record(seg: np.ndarray, box: Box, region: Box, margin: Triple, shape: Triple
                 ) -> tuple[np.ndarray, Record]:
    """The core's labels (its objects 1..m by first voxel) and the block's record from the
    region's segmentation `seg`: the core objects' sizes and first voxels, m, and each face's
    slab, labelled as the core (the region's other objects m+1, ...)."""
    core = seg[box.slices(region.lo)]
    ids = fastremap.unique(core)
    ids = ids[ids != 0]
    n = int(seg.max())
    lut = np.zeros(n + 1, np.min_scalar_type(n))  # the slabs in the least unsigned type
    lut[ids] = np.arange(1, len(ids) + 1)
    rest = np.setdiff1d(np.arange(1, len(lut)), ids.astype(np.int64))
    lut[rest] = np.arange(len(ids) + 1, len(lut))
    local = lut[core]
    sizes, first = core_stats(local, box, shape)
    rec: Record = {"sizes": sizes, "first": first, "n": np.array(len(ids), np.int64)}
    for c in range(3):
        for side, at, has in (("low", box.lo[c], box.lo[c] > 0),
                              ("high", box.hi[c], box.hi[c] < shape[c])):
            s = slab(box, c, at, margin, shape)
            rec[f"{side}{c}"] = (lut[seg[s.slices(region.lo)]] if has
                                 else np.zeros((0, 0, 0), lut.dtype))
    return local, rec


class _Shifted:
    """A predictor that sees FOV corners in the volume, for a canvas over a region at `lo`."""

    def __init__(self, predictor: inference.Predictor, lo: Triple) -> None:
        self.predictor = predictor
        self.lo = lo
        many = getattr(predictor, "many", None)
        if many is not None:
            self.many = lambda corners, images, masks: many(
                [self._volume(c) for c in corners], images, masks)

    def _volume(self, corner: tuple[int, int, int]) -> tuple[int, int, int]:
        return (corner[0] + self.lo[0], corner[1] + self.lo[1], corner[2] + self.lo[2])

    def __call__(self, corner: tuple[int, int, int], image: np.ndarray,
                 mask: np.ndarray) -> np.ndarray:
        return self.predictor(self._volume(corner), image, mask)


def _faces_task(item: int, bw: Blockwise, records: str) -> Record:
    """The block's objects matched with those of the block before it along each axis."""
    root = Path(records)
    here = load_record(root / f"{item}.npz")
    out = [np.zeros((0, 2), np.uint64)]
    for c in range(3):
        below = bw.grid.lower_neighbour(item, c)
        if below is None:
            continue
        there = load_record(root / f"{below}.npz")
        pairs = overlap_pairs(there[f"high{c}"], here[f"low{c}"], bw.fraction)
        mine = (pairs[:, 0] <= int(there["n"])) & (pairs[:, 1] <= int(here["n"]))
        pairs = pairs[mine]  # objects each block holds in its core
        out.append(np.stack([stitch.provisional(below, pairs[:, 0]),
                             stitch.provisional(item, pairs[:, 1])], axis=1).reshape(-1, 2))
    return {"pairs": np.concatenate(out)}


@dataclass(frozen=True)
class _SectionIds:
    """Segment ids of a section of the working array, through the numbering (read on first
    use: a gap task, which gets its own copy, asks for up to four sections)."""

    labels: str
    numbering: str
    shape: Triple

    @cached_property
    def _table(self) -> stitch.Numbering:
        return load_numbering(Path(self.numbering))

    def __call__(self, z: int) -> np.ndarray:
        prov = read(Path(self.labels), gaps.section_box(self.shape, z), "FFN block labels")
        return self._table.lookup(prov[0])


def join_numbering(num: stitch.Numbering, sizes: list[np.ndarray], first: list[np.ndarray],
                   pairs: np.ndarray) -> stitch.Numbering:
    """`num` with the segments of `pairs` (segment ids, (k, 2)) joined and every segment
    renumbered 1..N by first voxel (`segment.gaps.join` over the blocks' objects)."""
    lut = np.concatenate([np.zeros(1, np.uint64), num.ids])  # entry 0: no object
    size = np.concatenate([np.zeros(1, np.int64), *sizes])
    where = np.concatenate([np.zeros(1, np.int64), *first])
    ids = segment_gaps.join(lut, size, where, pairs)[1:]
    return stitch.Numbering(num.offsets, ids, int(ids.max()) if len(ids) else 0)


def _relabel_task(item: int, bw: Blockwise, numbering: str, out: str) -> Record:
    tiles = Grid(bw.shape, aligned(bw.block, io.CHUNK))
    box = tiles.box(item)
    prov = read(bw.labels_path, box, "FFN block labels")
    write(Path(out), box, load_numbering(Path(numbering)).lookup(prov))
    return {}


def segment(engine: Engine, bw: Blockwise, inputs: BlockInputs, out: Path,
            attributes: dict[str, object] | None = None) -> dict[int, int]:
    """Segment the volume into `out` (uint64 zarr) block by block; each segment's voxel
    count."""
    bw.params.check()
    inference.check_geometry(bw.fov, bw.delta)
    items = range(len(bw.grid))
    create_sharded(bw.labels_path, bw.shape, bw.block, "uint64")
    blocks = engine.run(STAGE, items, _block_task, bw, inputs, compress=True)
    faces = engine.run("ffn faces", items, _faces_task, bw,
                       str(engine.manifest.folder(STAGE)))
    pairs = np.concatenate([np.zeros((0, 2), np.uint64), *faces.gather("pairs")])
    sizes = blocks.gather("sizes")
    first = blocks.gather("first")
    num = stitch.number(sizes, first, pairs, bw.params.min_size)
    path = Path(bw.work) / "ffn_numbering.npz"
    save_numbering(path, num)
    if inputs.masked(Box((0, 0, 0), (1, 1, 1))) is not None:  # the volume has defect masks
        joins = gaps.gap_pairs(engine, bw.shape, bw.block[0], inputs.masked,
                               _SectionIds(str(bw.labels_path), str(path), bw.shape))
        if len(joins):
            num = join_numbering(num, sizes, first, joins)
            path = Path(bw.work) / "ffn_numbering_joined.npz"
            save_numbering(path, num)
    io.create_zarr(out, bw.shape, "uint64", attributes=attributes, delete_existing=False)
    tiles = Grid(bw.shape, aligned(bw.block, io.CHUNK))
    engine.run("ffn relabel", range(len(tiles)), _relabel_task, bw, str(path), str(out))
    seg_sizes = np.bincount(num.ids.astype(np.int64),
                            weights=np.concatenate([np.zeros(0, np.int64), *sizes]),
                            minlength=num.count + 1)
    return {int(s): int(seg_sizes[s]) for s in range(1, num.count + 1)}
