"""Blockwise joining: our segmentation of a volume too big for memory, slab by slab along z.

Each slab is segmented on its own; segments are then joined across each slab face by the mean z
affinity of their contact on that face (the agglomeration's rule and threshold), and the size
filter and the final numbering run over the whole volume.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from connectome_query.reconstruct.segment.agglomeration import merge
from connectome_query.reconstruct.segment.layout import as_float32
from connectome_query.reconstruct.segment.seeded import SegParams, segment_volume


class LabelStore(Protocol):
    """Where blockwise segmentation keeps labels between passes (a zarr array in the
    pipeline): write a block of sections at z0, read sections z0..z1 back."""

    def write(self, z0: int, labels: np.ndarray) -> None: ...

    def read(self, z0: int, z1: int) -> np.ndarray: ...


@dataclass
class _Slabs:
    """What pass 1 learns of the slabs: segment sizes by provisional id (0 first, unused),
    and the contacts across slab faces (pairs, summed z affinity, face count)."""

    sizes: list[np.ndarray] = field(default_factory=lambda: [np.zeros(1, np.int64)])
    total: int = 0  # provisional ids so far
    pairs: list[np.ndarray] = field(default_factory=list)
    sums: list[np.ndarray] = field(default_factory=list)
    counts: list[np.ndarray] = field(default_factory=list)

    def add_face(self, below: np.ndarray, above: np.ndarray, z_affinity: np.ndarray) -> None:
        """The contacts between the last section of one slab (`below`) and the first of
        the next (`above`), across their z affinities."""
        a, b = below.reshape(-1), above.reshape(-1)
        w = z_affinity.reshape(-1).astype(np.float64)
        both = (a != 0) & (b != 0)
        if both.any():
            key = np.stack([np.minimum(a[both], b[both]), np.maximum(a[both], b[both])])
            uk, inv = np.unique(key, axis=1, return_inverse=True)
            self.pairs.append(uk.T)
            self.sums.append(np.bincount(inv.reshape(-1), weights=w[both]))
            self.counts.append(np.bincount(inv.reshape(-1)).astype(np.int64))


def _segment_slabs(read_affs: Callable[[int, int], np.ndarray],
                   shape_zyx: tuple[int, int, int], voxel_size_zyx: tuple[float, float, float],
                   store: LabelStore, p: SegParams, bounds: list[tuple[int, int]]) -> _Slabs:
    """Pass 1: each slab segmented on its own (no size filter), written under ids unique
    in the volume."""
    slabs = _Slabs()
    last_plane: np.ndarray | None = None
    for z0, z1 in bounds:
        affs = as_float32(read_affs(z0, z1))
        if affs.shape != (3, z1 - z0, *shape_zyx[1:]):
            raise ValueError(f"read_affs({z0}, {z1}) returned shape {affs.shape}, expected "
                             f"{(3, z1 - z0, *shape_zyx[1:])}")
        ids, n = segment_volume(affs, voxel_size_zyx, p, 1)  # 1..n, first appearance
        slabs.sizes.append(np.bincount(ids.reshape(-1), minlength=n + 1)[1:])
        ids[ids != 0] += np.uint64(slabs.total)  # in place: ids unique in the volume
        store.write(z0, ids)
        slabs.total += n
        if last_plane is not None:
            slabs.add_face(last_plane, ids[0], affs[0, 0])
        last_plane = ids[-1].copy()
    return slabs


def _final_ids(slabs: _Slabs, p: SegParams) -> tuple[np.ndarray, int]:
    """Pass 2: segments joined across faces, those under `min_size` voxels in the volume
    dropped; (final id of each provisional id, number of segments)."""
    total = slabs.total
    size_of = np.concatenate(slabs.sizes)  # by provisional id, 0 first
    rep = np.arange(total + 1, dtype=np.int64)
    if slabs.pairs:
        frag, to = merge(np.concatenate(slabs.pairs).astype(np.uint64),
                         np.concatenate(slabs.sums), np.concatenate(slabs.counts),
                         p.merge_threshold, p.prior_faces)
        rep[frag.astype(np.int64)] = to.astype(np.int64)
    seg_size = np.bincount(rep, weights=size_of, minlength=total + 1)
    keep = (seg_size >= p.min_size) & (np.arange(total + 1) > 0)
    # final ids in order of first appearance: a segment's smallest provisional id
    first = np.full(total + 1, total + 1, np.int64)
    np.minimum.at(first, rep, np.arange(total + 1))
    roots = np.flatnonzero(keep & (rep == np.arange(total + 1)))
    new = np.zeros(total + 1, np.uint64)
    new[roots[np.argsort(first[roots], kind="stable")]] = np.arange(1, len(roots) + 1,
                                                                     dtype=np.uint64)
    return new[rep] * keep[rep], len(roots)


def seeded_segmentation_blockwise(
        read_affs: Callable[[int, int], np.ndarray], shape_zyx: tuple[int, int, int],
        voxel_size_zyx: tuple[float, float, float], store: LabelStore,
        params: SegParams | None = None, slab: int = 128) -> int:
    """`seeded_segmentation` of a volume too big for memory, slab by slab along z.

    `read_affs(z0, z1)` returns affinities (3, z1 - z0, y, x) of sections z0..z1 (the
    waterz layout, so channel 0 of section z0 links it to section z0 - 1); `store` keeps
    the labels (uint64) between passes. Pass 1 segments each slab on its own (without the
    size filter) and writes its segments under ids unique in the volume. Pass 2 joins
    segments across each slab face greedily by the mean z affinity of their contact on
    that face, with the same merge threshold, then drops segments under `min_size`
    voxels in the whole volume. Pass 3 rewrites the store with the final ids (1..N, in
    order of first appearance in the slabs). Memory: one slab's affinities and labels.
    With one slab (`slab` >= sections) the result equals `seeded_segmentation`'s.
    Returns the number of segments.
    """
    p = params or SegParams()
    nz = int(shape_zyx[0])
    if slab < 1:
        raise ValueError(f"slab must be at least one section, got {slab}")
    bounds = [(z0, min(z0 + slab, nz)) for z0 in range(0, nz, slab)]
    slabs = _segment_slabs(read_affs, shape_zyx, voxel_size_zyx, store, p, bounds)
    final, n = _final_ids(slabs, p)
    for z0, z1 in bounds:
        store.write(z0, final[store.read(z0, z1).astype(np.int64)])
    return n
