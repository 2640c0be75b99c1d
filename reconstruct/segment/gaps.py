"""Joining segments across a run of wholly masked sections (missing sections, filled by the
front end): the decision is taken from the good sections either side, never from masked voxels.

For a run of sections z0..z1 masked whole (`masked_runs`), the last good section below (z0 - 1)
and the first good section above (z1 + 1) are compared: a segment below and one above are
joined when they are each other's best match by 2-D footprint overlap and the overlap covers at
least `GAP_OVERLAP` of the smaller footprint (`footprint_pairs`). The masked voxels themselves
stay unlabelled (segment 0). `join` merges the pairs in the final labelling and numbers the
segments 1..N by first voxel again, as `stitch.final_ids` does.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

GAP_OVERLAP = 0.5
"""Least overlap of two footprints across a gap, as a fraction of the smaller one."""


def masked_runs(whole: np.ndarray) -> list[tuple[int, int]]:
    """Runs (z0, z1) of consecutive sections masked whole (`whole[z]`) with a good section
    on both sides (a run at the volume's start or end joins nothing)."""
    w = np.concatenate([[False], np.asarray(whole, bool), [False]])
    edges = np.flatnonzero(np.diff(w.astype(np.int8)))
    runs = [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]
    return [(z0, z1) for z0, z1 in runs if z0 > 0 and z1 < len(whole) - 1]


def footprint_pairs(below: np.ndarray, above: np.ndarray,
                    min_overlap: float = GAP_OVERLAP) -> np.ndarray:
    """Pairs (a, b) (uint64, (k, 2)) of segment a of section `below` and segment b of
    `above` (2-D, same shape, 0 = none) that are each other's best match by overlap and
    overlap on at least `min_overlap` of the smaller footprint."""
    a, b = np.asarray(below).ravel(), np.asarray(above).ravel()
    both = (a != 0) & (b != 0)
    if not both.any():
        return np.zeros((0, 2), np.uint64)
    pairs, overlap = np.unique(np.stack([a[both], b[both]], 1), axis=0, return_counts=True)
    ids_a, area_a = np.unique(a[a != 0], return_counts=True)
    ids_b, area_b = np.unique(b[b != 0], return_counts=True)
    size_a = area_a[np.searchsorted(ids_a, pairs[:, 0])]
    size_b = area_b[np.searchsorted(ids_b, pairs[:, 1])]
    best_a = _best(pairs[:, 0], overlap)
    best_b = _best(pairs[:, 1], overlap)
    keep = best_a & best_b & (overlap >= min_overlap * np.minimum(size_a, size_b))
    return pairs[keep].astype(np.uint64)


def _best(key: np.ndarray, overlap: np.ndarray) -> np.ndarray:
    """Whether each row holds its key's largest overlap (ties: the first row in order)."""
    order = np.lexsort((-overlap, key))
    first = np.ones(len(order), bool)
    first[1:] = key[order][1:] != key[order][:-1]
    out = np.zeros(len(key), bool)
    out[order[first]] = True
    return out


def join(lut: np.ndarray, sizes: np.ndarray, first: np.ndarray, pairs: np.ndarray
         ) -> np.ndarray:
    """The final id of every fragment (`lut`, 0 for none) after joining the segment pairs
    (uint64, (k, 2)), segments renumbered 1..N by first voxel. `sizes`, `first`: voxels and
    first voxel (flat index) of each fragment."""
    lut = np.asarray(lut, np.int64)
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    if not len(pairs):
        return lut.astype(np.uint64)
    n = int(lut.max()) + 1
    graph = coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])),
                       shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    seg = comp[lut]
    seg_first = np.full(int(comp.max()) + 1, np.iinfo(np.int64).max, np.int64)
    real = (lut != 0) & (np.asarray(sizes) > 0)
    np.minimum.at(seg_first, seg[real], np.asarray(first, np.int64)[real])
    roots = np.flatnonzero(seg_first < np.iinfo(np.int64).max)
    roots = roots[np.argsort(seg_first[roots], kind="stable")]
    new = np.zeros(len(seg_first), np.uint64)
    new[roots] = np.arange(1, len(roots) + 1, dtype=np.uint64)
    out = new[seg]
    out[lut == 0] = 0
    return out
