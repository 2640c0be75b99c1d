"""Joining blocks: whole-volume numbers for components found block by block, and the final ids.

Components found inside blocks carry provisional ids, the block's number in the high 32 bits and
the block-local id (1..n) below. `number` joins them across faces (the pairs `blocks.face_pairs`
finds) with a union-find over the provisional ids alone (never voxels), drops those under a size
counted over the whole volume, and numbers the rest by their first voxel in the volume's raster
order, as the whole-volume labelling numbers its components. `final_ids` does the same for the
segments: the fragments' region graph (summed over the blocks) agglomerated by the whole-volume
rule, segments under `min_size` dropped, the rest 1..N by first voxel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from connectome_query.reconstruct.segment.agglomeration import merge
from connectome_query.reconstruct.segment.contacts import QUANTUM
from connectome_query.reconstruct.segment.numbering import merge_table

LOCAL_BITS = 32
LOCAL_MASK = np.uint64((1 << LOCAL_BITS) - 1)


def provisional(block: int, local: np.ndarray) -> np.ndarray:
    """Provisional ids of block-local ids (0 stays 0)."""
    local = np.asarray(local).astype(np.uint64)
    return np.where(local != 0, (np.uint64(block) << np.uint64(LOCAL_BITS)) | local,
                    np.uint64(0))


@dataclass(frozen=True)
class Numbering:
    """Whole-volume ids of provisional ids: block b's local id k is entry offsets[b] + k - 1
    of `ids` (0 where the component was dropped)."""

    offsets: np.ndarray  # int64 (blocks + 1,)
    ids: np.ndarray  # uint64
    count: int  # components kept

    def lookup(self, prov: np.ndarray) -> np.ndarray:
        """Whole-volume ids of provisional ids (0 stays 0)."""
        prov = np.asarray(prov, np.uint64)
        block = (prov >> np.uint64(LOCAL_BITS)).astype(np.int64)
        local = (prov & LOCAL_MASK).astype(np.int64)
        nz = local != 0
        out = np.zeros(prov.shape, np.uint64)
        out[nz] = self.ids[self.offsets[block[nz]] + local[nz] - 1]
        return out


def number(sizes: list[np.ndarray], first: list[np.ndarray], pairs: np.ndarray,
           min_size: int, offset: int = 0) -> Numbering:
    """Components of all blocks joined by `pairs` (provisional ids, (k, 2)), those of fewer
    than `min_size` voxels in all dropped, the others numbered offset + 1, ... by their
    first voxel. `sizes[b][k - 1]`, `first[b][k - 1]`: voxels of block b's component k in
    the block and the flat index (in the volume) of its first voxel there."""
    counts = np.array([len(s) for s in sizes], np.int64)
    offsets = np.zeros(len(sizes) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    n = int(offsets[-1])
    size = np.concatenate([*sizes, np.zeros(0, np.int64)]).astype(np.int64)
    where = np.concatenate([*first, np.zeros(0, np.int64)]).astype(np.int64)
    pairs = np.asarray(pairs, np.uint64).reshape(-1, 2)
    ends = []
    for col in range(2):
        p = pairs[:, col]
        ends.append(offsets[(p >> np.uint64(LOCAL_BITS)).astype(np.int64)]
                    + (p & LOCAL_MASK).astype(np.int64) - 1)
    graph = coo_matrix((np.ones(len(pairs), np.int8), (ends[0], ends[1])), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    m = int(comp.max()) + 1 if n else 0
    comp_size = np.bincount(comp, weights=size, minlength=m)
    comp_first = np.full(m, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(comp_first, comp, where)
    kept = np.flatnonzero(comp_size >= min_size)
    kept = kept[np.argsort(comp_first[kept], kind="stable")]
    new = np.zeros(m, np.uint64)
    new[kept] = np.arange(offset + 1, offset + len(kept) + 1, dtype=np.uint64)
    return Numbering(offsets, new[comp] if n else np.zeros(0, np.uint64), len(kept))


def final_ids(sizes: np.ndarray, first: np.ndarray, pairs: np.ndarray, sums: np.ndarray,
              counts: np.ndarray, merge_threshold: float, prior_faces: float,
              min_size: int) -> np.ndarray:
    """The final id of every fragment 0..F (0 for none, or for a segment under `min_size`):
    the region graph (pairs (a < b), summed affinity in 1/QUANTUM units, face counts, each
    pair once) agglomerated by mean affinity, segments numbered 1..N by first voxel.
    `sizes`, `first`: voxels and first voxel (flat index) of each fragment 0..F."""
    n = len(sizes)
    frag, rep = merge(np.asarray(pairs, np.uint64).reshape(-1, 2),
                      np.asarray(sums, np.float64) / QUANTUM, counts, merge_threshold,
                      prior_faces)
    lut = merge_table(frag, rep, n)[:n]
    seg_size = np.bincount(lut, weights=sizes, minlength=n)
    seg_first = np.full(n, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(seg_first, lut, first)
    roots = np.flatnonzero((seg_size >= min_size) & (np.arange(n) > 0))
    roots = roots[np.argsort(seg_first[roots], kind="stable")]
    new = np.zeros(n, np.uint64)
    new[roots] = np.arange(1, len(roots) + 1, dtype=np.uint64)
    return new[lut]


def join_edges(pairs: list[np.ndarray], sums: list[np.ndarray], counts: list[np.ndarray]
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The union of blocks' region graphs: each pair once, sums and counts added."""
    if not pairs or sum(len(p) for p in pairs) == 0:
        return np.zeros((0, 2), np.uint64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    allp = np.concatenate([np.asarray(p, np.uint64).reshape(-1, 2) for p in pairs])
    uniq, inv = np.unique(allp, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    s = np.bincount(inv, weights=np.concatenate(sums).astype(np.float64), minlength=len(uniq))
    c = np.bincount(inv, weights=np.concatenate(counts).astype(np.float64), minlength=len(uniq))
    return uniq, s.astype(np.int64), c.astype(np.int64)
