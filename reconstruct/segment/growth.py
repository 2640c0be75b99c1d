"""Growth: labels spread breadth first along strong affinities into unlabelled active voxels.

Each layer gives every unlabelled voxel with a strong edge to a voxel labelled before the layer
the label of its strongest such edge (a watershed on a flat-ish landscape). Numba on the active
voxels: a quarter of the time of the same layers in numpy on the 256^3 bench volume.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from connectome_query.reconstruct.segment.active import flat_index, scan
from connectome_query.reconstruct.segment.layout import (
    BLOCKS,
    CORE,
    EDGES,
    MEMBER,
    as_float32,
    check_affinities,
)


@njit(cache=True, inline="always")
def _stronger(best: int, best_affinity: np.float32, strong: bool, label: int,
              a: np.float32) -> tuple[int, np.float32]:  # pragma: no cover - compiled
    """(label, affinity) after offering `label` across an edge of affinity a: taken if
    the edge is strong, the label a label and a above the best so far (selects, no
    branches)."""
    t = strong & (label > 0) & (a > best_affinity)
    return (label if t else best), (a if t else best_affinity)


@njit(cache=True, inline="always")
def _best(labels: np.ndarray, flags: np.ndarray, neighbours: np.ndarray,
          affinity: np.ndarray, i: int, threshold: np.float32) -> int:  # pragma: no cover
    """Label of the strongest edge above threshold to a labelled neighbour (0 if none;
    the mark -1 is not a label).

    Order -z, +z, -y, +y, -x, +x; a later edge wins only if strictly stronger. Without
    branches on the data (which way a voxel's edges go is unpredictable): every
    neighbour is read (a missing one, -1, wraps to the last position) and the flags
    decide what counts.
    """
    f = flags[i]
    z_next = neighbours[1, i]
    y_next = neighbours[3, i]
    x_next = min(i + 1, len(labels) - 1)
    best, a = _stronger(0, threshold, f & 1 != 0, labels[neighbours[0, i]], affinity[0, i])
    best, a = _stronger(best, a, f & 2 != 0, labels[z_next], affinity[0, z_next])
    best, a = _stronger(best, a, f & 4 != 0, labels[neighbours[2, i]], affinity[1, i])
    best, a = _stronger(best, a, f & 8 != 0, labels[y_next], affinity[1, y_next])
    best, a = _stronger(best, a, f & 16 != 0, labels[i - 1], affinity[2, i])
    return _stronger(best, a, f & 32 != 0, labels[x_next], affinity[2, x_next])[0]


@njit(cache=True, parallel=True)
def _label_candidates(labels: np.ndarray, flags: np.ndarray, neighbours: np.ndarray,
                      affinity: np.ndarray, candidates: np.ndarray, n_cand: int,
                      threshold: np.float32,
                      chosen: np.ndarray) -> None:  # pragma: no cover - compiled
    """chosen[k]: the `_best` label of candidates[k], k < n_cand (threaded)."""
    for k in prange(n_cand):
        chosen[k] = _best(labels, flags, neighbours, affinity, candidates[k], threshold)


@njit(cache=True, parallel=True)
def _label_free(labels: np.ndarray, flags: np.ndarray, neighbours: np.ndarray,
                affinity: np.ndarray, threshold: np.float32, free: np.ndarray, n_free: int,
                chosen: np.ndarray) -> int:  # pragma: no cover - compiled
    """The labels of one growth layer (threaded): chosen[k] gets the `_best` label of the
    unlabelled position free[k] (0 if none). Returns how many got one."""
    n = 0
    for k in prange(n_free):
        b = _best(labels, flags, neighbours, affinity, free[k], threshold)
        if b != 0:
            n += 1
        chosen[k] = b
    return n


@njit(cache=True, parallel=True)
def _write_at(labels: np.ndarray, at: np.ndarray, values: np.ndarray,
              n: int) -> None:  # pragma: no cover - compiled
    """labels[at[k]] = values[k] where values[k] != 0, k < n. A kernel of its own: numba
    fuses consecutive parallel loops, and a layer's labels must all be chosen before any
    is written."""
    for k in prange(n):
        if values[k] != 0:
            labels[at[k]] = values[k]


@njit(cache=True, parallel=True)  # sequential: see the note in segment/__init__.py
def _split_free(free: np.ndarray, chosen: np.ndarray, n_free: int,
                done: np.ndarray) -> tuple[int, int]:  # pragma: no cover - compiled
    """Keep in `free` (in order) the positions a layer left unlabelled; the others go
    to `done`. Returns both counts. Without branches on the data: every position is
    written to both, and only the count of the one it belongs to moves on."""
    n_kept = 0
    n_done = 0
    for k in range(n_free):
        v = free[k]
        kept = chosen[k] == 0
        free[n_kept] = v
        done[n_done] = v
        n_kept += kept
        n_done += not kept
    return n_kept, n_done


@njit(cache=True, parallel=True)
def _free_positions(labels: np.ndarray, free: np.ndarray) -> int:  # pragma: no cover
    """free[:n] = the unlabelled positions, in order; returns n.

    If one position in 64 says they are few, one pass with a branch that is seldom
    taken; otherwise threads over BLOCKS runs of positions, each counting its own,
    then writing them, without branches on the data, from where the runs before it end.
    """
    n = len(labels)
    seen = 0
    for i in range(0, n, 64):
        seen += labels[i] == 0
    if 8 * 64 * seen < n:
        k = 0
        for i in range(n):
            if labels[i] == 0:
                free[k] = i
                k += 1
        return k
    ends = np.zeros(BLOCKS + 1, np.int64)
    for b in prange(BLOCKS):
        c = 0
        for i in range(n * b // BLOCKS, n * (b + 1) // BLOCKS):
            c += labels[i] == 0
        ends[b + 1] = c
    for b in range(BLOCKS):
        ends[b + 1] += ends[b]
    for b in prange(BLOCKS):
        k = ends[b]
        for i in range(n * b // BLOCKS, n * (b + 1) // BLOCKS):
            if k == ends[b + 1]:  # the next write would land in the next run's room
                break
            free[k] = i
            k += labels[i] == 0
    return ends[BLOCKS]


@njit(cache=True, parallel=True)  # sequential: see the note in segment/__init__.py
def _next_candidates(labels: np.ndarray, flags: np.ndarray, neighbours: np.ndarray,
                     front: np.ndarray, n_front: int,
                     candidates: np.ndarray) -> int:  # pragma: no cover - compiled
    """Unlabelled neighbours across strong edges of the positions just labelled, each
    once (marked -1)."""
    n_cand = 0
    for k in range(n_front):
        u = front[k]
        f = flags[u]
        for d in range(6):
            if f & (1 << d) != 0:
                w = neighbours[d, u] if d < 4 else (u - 1 if d == 4 else u + 1)
                if labels[w] == 0:
                    labels[w] = -1
                    candidates[n_cand] = w
                    n_cand += 1
    return n_cand


@njit(cache=True, parallel=True)  # sequential: see the note in segment/__init__.py
def grow_layers(labels: np.ndarray, flags: np.ndarray, neighbours: np.ndarray,
                affinity: np.ndarray, threshold: np.float32, max_layers: int,
                free: np.ndarray, candidates: np.ndarray,
                chosen: np.ndarray) -> int:  # pragma: no cover - compiled
    """Synchronous breadth-first growth of `labels` (positions); returns the number of
    layers grown.

    While layers are big (over 1/16 of the positions) a layer is a threaded pass over
    the positions still unlabelled (`_label_free`); then the growth follows the frontier:
    a layer's candidates are marked -1, given their label (`_best` ignores marks), then
    written, and the next layer's candidates come from the positions just labelled. Both
    ways give the same labels. The loops live in helpers that reassign no array (numba
    would otherwise count references inside them). `free`, `candidates` (neighbours'
    dtype) and `chosen` (labels') are scratch of len(labels) positions.
    """
    if max_layers <= 0:
        return 0
    n_free = _free_positions(labels, free)
    if n_free == 0:
        return 0
    big = len(labels) // 16
    layers = 0
    n_cand = 0
    while layers < max_layers:
        n_cand = _label_free(labels, flags, neighbours, affinity, threshold, free, n_free,
                             chosen)
        _write_at(labels, free, chosen, n_free)
        if n_cand == 0:
            return layers
        layers += 1
        n_free, n_cand = _split_free(free, chosen, n_free, candidates)
        if n_cand <= big:
            break
    if layers >= max_layers:
        return layers
    front = free  # the positions still free are not needed any more
    n_cand = _next_candidates(labels, flags, neighbours, candidates, n_cand, front)
    while n_cand > 0:
        _label_candidates(labels, flags, neighbours, affinity, front, n_cand, threshold,
                          chosen)
        _write_at(labels, front, chosen, n_cand)
        layers += 1
        if layers >= max_layers:
            break
        n_cand = _next_candidates(labels, flags, neighbours, front, n_cand, candidates)
        candidates, front = front, candidates
    return layers


@njit(cache=True, parallel=True)
def mark_unreached(labels: np.ndarray, flags: np.ndarray,
                   neighbours: np.ndarray) -> None:  # pragma: no cover - compiled
    """MEMBER on exactly the unlabelled positions with a strong edge to an unlabelled
    neighbour (the only ones that can be in a component of two voxels or more), and
    off everywhere else."""
    for i in prange(len(flags)):
        f = flags[i] & (EDGES | CORE)
        if labels[i] == 0 and ((f & 1 != 0 and labels[neighbours[0, i]] == 0)
                               or (f & 2 != 0 and labels[neighbours[1, i]] == 0)
                               or (f & 4 != 0 and labels[neighbours[2, i]] == 0)
                               or (f & 8 != 0 and labels[neighbours[3, i]] == 0)
                               or (f & 16 != 0 and labels[i - 1] == 0)
                               or (f & 32 != 0 and labels[i + 1] == 0)):
            f |= MEMBER
        flags[i] = f


def grow(labels: np.ndarray, affs: np.ndarray, threshold: float, max_iter: int = 64) -> None:
    """Grow labels in place into unlabelled voxels across affinities above `threshold`.

    Each pass assigns every unlabelled voxel that touches a labelled one through a strong
    edge the label of its strongest such edge (breadth-first watershed), for at most
    `max_iter` passes. Labels must be integers below 2**63.
    """
    if not labels.flags.c_contiguous:
        raise ValueError("labels must be C-contiguous to grow in place")
    check_affinities(affs)
    if labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers, got {labels.dtype}")
    affs = as_float32(affs)
    act = scan(affs, threshold)
    at = flat_index(act)
    flat = labels.reshape(-1)
    lab = flat[at].astype(np.int64)
    s = act.scratch
    grow_layers(lab, act.flags, act.neighbours, act.affinity, np.float32(threshold),
                int(max_iter), s[0], s[1], np.empty_like(lab))
    flat[at] = lab.astype(labels.dtype)
