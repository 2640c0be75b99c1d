"""Final segment ids: small segments dropped, the rest numbered 1..N in order of first appearance.

`final_ids` and `write_segments` end our segmentation on the active voxels, writing the volume
once (numba, threaded: a third of the time fastremap's size filter takes on the same labels at
256^3). `size_filter` and `relabel` do these jobs on any label volume with fastremap.
"""

from __future__ import annotations

import fastremap
import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def final_ids(labels: np.ndarray, lut: np.ndarray, min_size: int,
              parts: int) -> np.ndarray:  # pragma: no cover - compiled
    """new[s]: the final id of segment s of lut[labels] (positions in raster order, labels
    >= 0): 1..N in order of first appearance for segments of at least min_size voxels,
    0 for the others.

    Threads over `parts` runs of positions, each counting its segments and noting where
    each first appears; the runs are then combined in order, and the segments sorted by
    their first position (the result does not depend on `parts`).
    """
    n = len(labels)
    m = len(lut)
    counts = np.zeros((parts, m), np.int64)
    first = np.empty((parts, m), np.int64)
    for b in prange(parts):
        for i in range(n * b // parts, n * (b + 1) // parts):
            s = lut[labels[i]]
            if s != 0:
                if counts[b, s] == 0:
                    first[b, s] = i
                counts[b, s] += 1
    total = np.zeros(m, np.int64)
    at = np.full(m, n, np.int64)  # first position; n for segments that never appear
    for b in range(parts):
        for s in range(m):
            if counts[b, s] != 0:
                if total[s] == 0:
                    at[s] = first[b, s]
                total[s] += counts[b, s]
    order = np.argsort(at)
    new = np.zeros(m, np.int64)
    nxt = 0
    for k in range(int(np.count_nonzero(total))):
        s = order[k]
        if s != 0 and total[s] >= min_size:
            nxt += 1
            new[s] = nxt
    return new


@njit(cache=True, parallel=True)
def write_segments(labels: np.ndarray, lut: np.ndarray, new: np.ndarray, rows: np.ndarray,
                   xs: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """Every voxel of `out`: new[lut[labels[i]]] at position i, 0 elsewhere (threads over
    sections; `out` need not be zeroed)."""
    nz, ny, nx = out.shape
    for z in prange(nz):
        for y in range(ny):
            r = z * ny + y
            row = out[z, y]
            for x in range(nx):
                row[x] = 0
            for k in range(rows[r], rows[r + 1]):
                row[xs[k]] = new[lut[labels[k]]]


def merge_table(fragments: np.ndarray, representatives: np.ndarray, n: int) -> np.ndarray:
    """A lookup table over ids 0..max(n, fragments) - 1 sending each fragment to its
    representative and every other id to itself."""
    size = max(n, int(fragments.max()) + 1 if len(fragments) else 0)
    lut = np.arange(size, dtype=np.int64)
    lut[fragments.astype(np.int64)] = representatives.astype(np.int64)
    return lut


def relabel(labels: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    """Apply a fragment -> segment mapping in place (labels not in it are kept)."""
    if mapping:
        fastremap.remap(labels, mapping, preserve_missing_labels=True, in_place=True)
    return labels


def size_filter(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Zero segments smaller than `min_size` voxels and renumber 1..N in order of first
    appearance (raster order); returns uint64."""
    labels = np.ascontiguousarray(labels)
    if labels.dtype.kind == "i" and labels.size and int(labels.min()) < 0:
        raise ValueError("labels must be non-negative")
    if labels.size == 0:
        return np.zeros(labels.shape, np.uint64)
    ids, first, counts = fastremap.unique(labels, return_index=True, return_counts=True)
    if int(ids[-1]) > 4 * labels.size + (1 << 20):  # ids too large to index a table by
        labels, _ = fastremap.renumber(labels, preserve_zero=True)
        ids, first, counts = fastremap.unique(labels, return_index=True, return_counts=True)
    keep = (counts >= min_size) & (ids != 0)
    kept = ids[keep][np.argsort(first[keep], kind="stable")]
    new = np.zeros(int(ids[-1]) + 1, np.uint64)
    new[kept] = np.arange(1, len(kept) + 1, dtype=np.uint64)
    return new[labels]
