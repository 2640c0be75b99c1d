"""Connected components of the member voxels (seeds, rescued pieces) along strong affinities.

A union-find over positions whose roots are the components' first voxels, so labels come out in
order of first appearance, as cc3d's do; links inside a block of sections are made on threads,
then the links across blocks. Numba, not cc3d: it works on the active voxels alone, and cc3d,
which needs the whole volume as a voxel graph, takes over ten times as long at 256^3.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from connectome_query.reconstruct.segment.layout import MEMBER, ActiveVoxels, section_blocks


@njit(cache=True, inline="always")
def find(parent: np.ndarray, i: int) -> int:  # pragma: no cover - compiled
    """The root of i, halving the path on the way."""
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@njit(cache=True, inline="always")
def join(parent: np.ndarray, a: int, b: int) -> None:  # pragma: no cover - compiled
    """Union of the sets of a and b; the smaller root wins, so parent[i] <= i always."""
    ra = find(parent, a)
    rb = find(parent, b)
    if ra < rb:
        parent[rb] = ra
    elif rb < ra:
        parent[ra] = rb


@njit(cache=True, inline="always")
def link(flags: np.ndarray, neighbours: np.ndarray, affinity: np.ndarray, parent: np.ndarray,
         i: int, f: int, along_z: bool, threshold: np.float32) -> None:  # pragma: no cover
    """Member i (flags f) into the union-find, joined to its -x, -y and (`along_z`) -z
    neighbours that are members across an affinity above threshold."""
    parent[i] = i
    if f & 16 != 0 and flags[i - 1] & MEMBER != 0 and affinity[2, i] > threshold:
        join(parent, i, i - 1)
    if f & 4 != 0:
        j = neighbours[2, i]
        if flags[j] & MEMBER != 0 and affinity[1, i] > threshold:
            join(parent, i, j)
    if f & 1 != 0 and along_z:
        j = neighbours[0, i]
        if flags[j] & MEMBER != 0 and affinity[0, i] > threshold:
            join(parent, i, j)


@njit(cache=True, inline="always")
def _next_member(flags: np.ndarray, words: np.ndarray, i: int, end: int,
                 mask: np.uint64) -> int:  # pragma: no cover - compiled
    """The first member position from i on (before end; end if none); `words` (the flags
    as uint64) and `mask` (MEMBER in every byte, or 0 where members are too many for it to
    pay) skip eight at a time."""
    while i < end:
        if mask != 0 and i & 7 == 0 and i + 8 <= end and words[i >> 3] & mask == 0:
            i += 8
            continue
        if flags[i] & MEMBER != 0:
            return i
        i += 1
    return end


def _words(flags: np.ndarray, sparse: bool) -> tuple[np.ndarray, np.uint64]:
    """The flags as uint64 words (whole ones), and MEMBER in every byte if members are
    `sparse` (see _next_member)."""
    return (flags[:len(flags) // 8 * 8].view(np.uint64),
            np.uint64(MEMBER * 0x0101010101010101 if sparse else 0))


@njit(cache=True, parallel=True)
def _link_inside_blocks(rows: np.ndarray, flags: np.ndarray, words: np.ndarray,
                        mask: np.uint64, neighbours: np.ndarray, affinity: np.ndarray,
                        threshold: np.float32, starts: np.ndarray, ny: int,
                        parent: np.ndarray) -> None:  # pragma: no cover - compiled
    """Union-find over positions of the links inside each block of sections
    starts[b] .. starts[b + 1] (threads over blocks: a block's links never leave its
    positions)."""
    for b in prange(len(starts) - 1):
        inner = rows[(starts[b] + 1) * ny]  # positions from here link to the block along z
        end = rows[starts[b + 1] * ny]
        i = rows[starts[b] * ny]
        while True:
            i = _next_member(flags, words, i, end, mask)
            if i >= end:
                break
            link(flags, neighbours, affinity, parent, i, flags[i], i >= inner, threshold)
            i += 1


@njit(cache=True, parallel=True)  # sequential: see the note in segment/__init__.py
def _link_across_blocks(rows: np.ndarray, flags: np.ndarray, neighbours: np.ndarray,
                        affinity: np.ndarray, threshold: np.float32, starts: np.ndarray,
                        ny: int, parent: np.ndarray) -> None:  # pragma: no cover - compiled
    """The links along z from each block's first section to the block before."""
    for b in range(1, len(starts) - 1):
        for i in range(rows[starts[b] * ny], rows[(starts[b] + 1) * ny]):
            f = flags[i]
            if f & MEMBER != 0 and f & 1 != 0:
                j = neighbours[0, i]
                if flags[j] & MEMBER != 0 and affinity[0, i] > threshold:
                    join(parent, i, j)


@njit(cache=True, parallel=True)
def _root_of_members(flags: np.ndarray, words: np.ndarray, mask: np.uint64,
                     parent: np.ndarray, bounds: np.ndarray, labels: np.ndarray,
                     n_roots: np.ndarray, roots: np.ndarray) -> None:  # pragma: no cover
    """labels[i]: the root of member i (parent[i] <= i; a root is its own parent); block b
    (positions bounds[b] .. bounds[b + 1]) lists its n_roots[b] roots, in order, from
    roots[bounds[b]] on (threads over blocks: a member whose parent lies in its block
    takes the root found for the parent; others walk up the tree, which no one
    writes)."""
    for b in prange(len(bounds) - 1):
        first = bounds[b]
        end = bounds[b + 1]
        n = 0
        i = first
        while True:
            i = _next_member(flags, words, i, end, mask)
            if i >= end:
                break
            p = parent[i]
            if p == i:
                r = i
                roots[first + n] = i
                n += 1
            elif p >= first:
                r = labels[p]
            else:
                r = p
                while parent[r] != r:
                    r = parent[r]
            labels[i] = r
            i += 1
        n_roots[b] = n


@njit(cache=True)
def _number_roots(bounds: np.ndarray, n_roots: np.ndarray, roots: np.ndarray,
                  parent: np.ndarray) -> int:  # pragma: no cover - compiled
    """parent[root] = the root's index among all roots in position order (its
    component's index); returns how many there are."""
    k = 0
    for b in range(len(n_roots)):
        for t in range(bounds[b], bounds[b] + n_roots[b]):
            parent[roots[t]] = k
            k += 1
    return k


@njit(cache=True, parallel=True)
def _component_sizes(flags: np.ndarray, words: np.ndarray, mask: np.uint64,
                     parent: np.ndarray, labels: np.ndarray,
                     sizes: np.ndarray) -> None:  # pragma: no cover - compiled
    """sizes[t, c]: members of component c (parent[root]) in the t-th of len(sizes)
    runs of positions (threads over runs)."""
    n = len(flags)
    parts = sizes.shape[0]
    for t in prange(parts):
        end = n * (t + 1) // parts
        i = n * t // parts
        root = -1  # members come in runs of one component: count a run, then add it
        run = 0
        while True:
            i = _next_member(flags, words, i, end, mask)
            if i >= end:
                break
            if labels[i] != root:
                if run:
                    sizes[t, parent[root]] += run
                root = labels[i]
                run = 0
            run += 1
            i += 1
        if run:
            sizes[t, parent[root]] += run


@njit(cache=True, parallel=True)
def _label_members(flags: np.ndarray, words: np.ndarray, mask: np.uint64,
                   parent: np.ndarray, ids: np.ndarray, bounds: np.ndarray,
                   labels: np.ndarray) -> None:  # pragma: no cover - compiled
    """labels[i] = the id of member i's component (ids[parent[root]]) (threads over the
    blocks of positions bounds[b] .. bounds[b + 1])."""
    for b in prange(len(bounds) - 1):
        end = bounds[b + 1]
        i = bounds[b]
        root = -1
        v = 0
        while True:
            i = _next_member(flags, words, i, end, mask)
            if i >= end:
                break
            if labels[i] != root:
                root = labels[i]
                v = ids[parent[root]]
            labels[i] = v
            i += 1


def components(act: ActiveVoxels, threshold: float, min_size: int, labels: np.ndarray,
               scratch: np.ndarray, offset: int = 0, sparse: bool = False,
               linked: bool = False) -> int:
    """Connected components of the member positions along affinities > threshold (at
    least the edge bits' threshold), written into `labels` (positions) as offset + 1, ...
    in order of first appearance, 0 for those under `min_size` voxels; returns how many
    were kept. `scratch`: (2, positions) int32; `sparse`: few positions are members (they
    are then looked for eight at a time); `linked`: scratch[0] already holds the
    union-find inside blocks (see `active.index`).
    """
    nz, ny, _ = act.shape
    thr = np.float32(threshold)
    parent, roots = scratch[0], scratch[1]
    starts = section_blocks(nz)
    words, mask = _words(act.flags, sparse)
    if not linked:
        _link_inside_blocks(act.rows, act.flags, words, mask, act.neighbours, act.affinity,
                            thr, starts, ny, parent)
    _link_across_blocks(act.rows, act.flags, act.neighbours, act.affinity, thr, starts, ny,
                        parent)
    bounds = act.rows[starts * ny]
    n_roots = np.empty(len(starts) - 1, np.int64)
    _root_of_members(act.flags, words, mask, parent, bounds, labels, n_roots, roots)
    n_comp = _number_roots(bounds, n_roots, roots, parent)
    sizes = np.zeros((max(1, min(numba.get_num_threads(), 8)), n_comp), np.int64)
    _component_sizes(act.flags, words, mask, parent, labels, sizes)
    keep = sizes.sum(axis=0) >= min_size
    ids = np.where(keep, offset + np.cumsum(keep), 0).astype(labels.dtype)
    _label_members(act.flags, words, mask, parent, ids, bounds, labels)
    return int(keep.sum())
