"""The region graph: each pair of touching fragments, with the summed affinity and count of faces.

Threads over blocks of sections, each with a hash of its own. Affinities are summed in whole units
of 2**-24 (`QUANTUM`), exactly, so a sum does not depend on the order of its terms: not on the
number of threads, nor on how a blockwise run cuts the volume (`blocks`).
Numba on the active voxels: a third of the time of a numpy region graph (np.unique of every face)
on the 256^3 bench volume.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from connectome_query.reconstruct.segment.active import flat_index, of_mask
from connectome_query.reconstruct.segment.layout import (
    ActiveVoxels,
    as_float32,
    check_affinities,
    section_blocks,
)

QUANTUM = float(1 << 24)
"""Affinities are summed as whole multiples of 1/QUANTUM (rounded to nearest): float64 adds
such numbers exactly as long as a sum stays below 2**29 faces."""
_CHUNK = 1 << 10  # positions visited between checks of the contact table's room
_ROOM = 16  # positions per edge a block of the region graph is first given room for


class _Edges:
    """Columns of the edges found so far (one block's at a time, from its own start)."""

    def __init__(self, total: int) -> None:
        self.a = np.empty(total, np.int64)  # smaller fragment of the pair
        self.b = np.empty(total, np.int64)  # larger fragment
        self.sums = np.empty(total, np.float64)  # summed affinity of their faces
        self.counts = np.empty(total, np.int64)  # number of faces


@njit(cache=True, inline="always")
def _slot(a: int, b: int, mask: int) -> int:  # pragma: no cover - compiled
    h = (a * np.int64(-7046029254386353131)) ^ (b * np.int64(-4417276706812531889))
    return int((h >> 17) & mask)


@njit(cache=True)
def _rehash(edge_a: np.ndarray, edge_b: np.ndarray, first: int, end: int,
            cap: int) -> np.ndarray:  # pragma: no cover - compiled
    """A table of `cap` slots holding the edges first .. end (edge index + 1; 0 = empty)."""
    table = np.zeros(cap, np.int64)
    for k in range(first, end):
        t = _slot(edge_a[k], edge_b[k], cap - 1)
        while table[t] != 0:
            t = (t + 1) & (cap - 1)
        table[t] = k + 1
    return table


@njit(cache=True, inline="always")
def _add_face(p: int, q: int, w: np.float32, c: int, table: np.ndarray, edge_a: np.ndarray,
              edge_b: np.ndarray, edge_sum: np.ndarray, edge_count: np.ndarray, end: int,
              last: np.ndarray, last_edge: np.ndarray) -> int:  # pragma: no cover
    """Add one face of affinity w between p and q (along axis c) to the hash; returns
    the end of the edges. `last[2c], last[2c + 1]`: the pair of the last face along c,
    `last_edge[c]` its edge (faces along an axis come in runs of one pair)."""
    a = min(p, q)
    b = max(p, q)
    if a != last[2 * c] or b != last[2 * c + 1]:
        mask = len(table) - 1
        s = _slot(a, b, mask)
        while True:
            e = table[s] - 1
            if e < 0:
                e = end
                end += 1
                table[s] = e + 1
                edge_a[e] = a
                edge_b[e] = b
                edge_sum[e] = 0.0
                edge_count[e] = 0
                break
            if edge_a[e] == a and edge_b[e] == b:
                break
            s = (s + 1) & mask
        last[2 * c] = a
        last[2 * c + 1] = b
        last_edge[c] = e
    e = last_edge[c]
    edge_sum[e] += np.floor(np.float64(w) * QUANTUM + 0.5)
    edge_count[e] += 1
    return end


@njit(cache=True)
def _chunk(labels: np.ndarray, neighbours: np.ndarray, affinity: np.ndarray,
           rows: np.ndarray, xs: np.ndarray, r: int, r1: int, table: np.ndarray,
           edge_a: np.ndarray, edge_b: np.ndarray, edge_sum: np.ndarray,
           edge_count: np.ndarray, end: int, last: np.ndarray,
           last_edge: np.ndarray) -> tuple[int, int]:  # pragma: no cover - compiled
    """Faces of whole rows from r on (before r1) into the hash, until at least _CHUNK
    positions are visited (the caller leaves room for a chunk and a row); returns the
    next row and the end of the edges."""
    i_end = rows[r] + _CHUNK
    while r < r1 and rows[r] < i_end:
        first = rows[r]
        for i in range(first, rows[r + 1]):
            p = int(labels[i])
            # most positions touch their own label only: test all three faces without
            # branches on the data (a missing neighbour, -1, reads the last position)
            h = max(i - 1, 0)
            qz = int(labels[neighbours[0, i]])
            qy = int(labels[neighbours[2, i]])
            qx = int(labels[h])
            dz = (neighbours[0, i] >= 0) & (qz > 0) & (qz != p)
            dy = (neighbours[2, i] >= 0) & (qy > 0) & (qy != p)
            dx = (i > first) & (xs[h] == xs[i] - 1) & (qx > 0) & (qx != p)
            if p <= 0 or not (dz | dy | dx):
                continue
            if dz:
                end = _add_face(p, qz, affinity[0, i], 0, table, edge_a, edge_b, edge_sum,
                                edge_count, end, last, last_edge)
            if dy:
                end = _add_face(p, qy, affinity[1, i], 1, table, edge_a, edge_b, edge_sum,
                                edge_count, end, last, last_edge)
            if dx:
                end = _add_face(p, qx, affinity[2, i], 2, table, edge_a, edge_b, edge_sum,
                                edge_count, end, last, last_edge)
        r += 1
    return r, end


@njit(cache=True)
def _block_edges(labels: np.ndarray, neighbours: np.ndarray, affinity: np.ndarray,
                 rows: np.ndarray, xs: np.ndarray, r0: int, r1: int, edge_a: np.ndarray,
                 edge_b: np.ndarray, edge_sum: np.ndarray, edge_count: np.ndarray,
                 first: int, room_end: int, row_max: int) -> int:  # pragma: no cover
    """Distinct (a < b) edges of the positions of rows r0..r1 with float64 sums
    accumulated in raster order (per voxel: its -z, -y, -x faces), written at
    first..room_end; returns the end of what was written, or -1 if they might not fit (a
    row holds at most row_max positions).

    Open-addressing hash on (a, b), grown (only between chunks of positions, so the
    inner loops never reassign an array) to keep room for a chunk's worth of edges.
    """
    cap = 1 << 12
    table = np.zeros(cap, np.int64)
    end = first
    last = np.full(6, -1, np.int64)
    last_edge = np.full(3, -1, np.int64)
    r = r0
    while r < r1:
        if end + 3 * (_CHUNK + row_max) > room_end:
            return -1
        if 2 * (end - first + 3 * _CHUNK) > cap:
            while 2 * (end - first + 3 * _CHUNK) > cap:
                cap *= 2
            table = _rehash(edge_a, edge_b, first, end, cap)
        r, end = _chunk(labels, neighbours, affinity, rows, xs, r, r1, table, edge_a, edge_b,
                        edge_sum, edge_count, end, last, last_edge)
    return end


@njit(cache=True, parallel=True)
def _region_graph_kernel(labels: np.ndarray, neighbours: np.ndarray, affinity: np.ndarray,
                         rows: np.ndarray, xs: np.ndarray, bounds: np.ndarray,
                         room: np.ndarray, edge_a: np.ndarray, edge_b: np.ndarray,
                         edge_sum: np.ndarray, edge_count: np.ndarray, ends: np.ndarray,
                         row_max: int) -> None:  # pragma: no cover - compiled
    """`_block_edges` of the rows bounds[b] .. bounds[b + 1], written at
    room[b] .. room[b + 1], to ends[b] (threads over blocks)."""
    for b in prange(len(bounds) - 1):
        ends[b] = _block_edges(labels, neighbours, affinity, rows, xs, bounds[b],
                               bounds[b + 1], edge_a, edge_b, edge_sum, edge_count, room[b],
                               room[b + 1], row_max)


def of_active(act: ActiveVoxels, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                             np.ndarray]:
    """`region_graph` of the labels `labels` of the active voxels.

    A block's edges first get room for one per _ROOM positions; if that might not be
    enough, all are counted again with four times the room (up to three per position: a
    block has no more edges than faces).
    """
    nz, ny, _ = act.shape
    bounds = section_blocks(nz) * ny
    size = np.diff(act.rows[bounds])
    row_max = int(np.diff(act.rows).max(initial=0))
    per = _ROOM
    while True:
        room = (np.minimum(size // per, 3 * size) if per else 3 * size) \
            + 3 * (_CHUNK + row_max)
        starts = np.zeros(len(size) + 1, np.int64)
        np.cumsum(room, out=starts[1:])
        edges = _Edges(int(starts[-1]))
        ends = np.empty(len(size), np.int64)
        _region_graph_kernel(labels, act.neighbours, act.affinity, act.rows, act.xs, bounds,
                             starts, edges.a, edges.b, edges.sums, edges.counts, ends,
                             row_max)
        if (ends >= 0).all():
            break
        per = max(per // 4, 1) if per > 1 else 0
    keep = np.concatenate([np.arange(starts[b], ends[b]) for b in range(len(size))]
                          + [np.zeros(0, np.int64)])
    pairs, inv = np.unique(np.stack([edges.a[keep], edges.b[keep]], axis=1), axis=0,
                           return_inverse=True)
    inv = inv.reshape(-1)
    sums = np.bincount(inv, weights=edges.sums[keep], minlength=len(pairs)) / QUANTUM
    counts = np.bincount(inv, weights=edges.counts[keep], minlength=len(pairs)).astype(np.int64)
    return pairs.astype(np.uint64).reshape(-1, 2), sums, counts


def region_graph(labels: np.ndarray, affs: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                 np.ndarray]:
    """Fragment adjacency: pairs (E, 2) with a < b (sorted), summed affinity (each face's
    affinity rounded to a multiple of 2**-24), face count."""
    check_affinities(affs)
    labels = np.ascontiguousarray(labels)
    act = of_mask(labels != 0, as_float32(affs))
    return of_active(act, labels.reshape(-1)[flat_index(act)].astype(np.int64))
