"""Agglomeration: fragments merged greedily by the mean affinity of their contact (waterz's rule).

After each merge the merged fragment's contacts are summed anew, and the heap is updated lazily
(stale entries are skipped when popped). Compiled with numba: half the time of the same loop in
Python (3 against 7 ms on the 256^3 bench volume's 4,282 contacts).
"""

from __future__ import annotations

import heapq

import numpy as np
from numba import njit, types
from numba.typed import Dict, List


@njit(cache=True)
def _agglomerate_kernel(edge_a: np.ndarray, edge_b: np.ndarray, sums: np.ndarray,
                        counts: np.ndarray, n_nodes: int, threshold: float,
                        prior_faces: float) -> np.ndarray:  # pragma: no cover - compiled
    """waterz MeanAffinity with a lazy heap; returns parent (merged node -> absorber)."""
    ne = len(edge_a)
    cap = max(ne, 16)
    edge_sum = np.zeros(cap, np.float64)
    edge_count = np.zeros(cap, np.int64)
    edge_sum[:ne] = sums
    edge_count[:ne] = counts
    adjacent = List()
    for _ in range(n_nodes):
        adjacent.append(Dict.empty(key_type=types.int64, value_type=types.int64))
    alive = np.ones(n_nodes, np.bool_)
    heap = List()
    for e in range(ne):
        a = edge_a[e]
        b = edge_b[e]
        adjacent[a][b] = e
        adjacent[b][a] = e
        heap.append((-edge_sum[e] / (edge_count[e] + prior_faces), a, b))
    heapq.heapify(heap)
    parent = np.arange(n_nodes)
    while len(heap) > 0:
        neg, a, b = heapq.heappop(heap)
        if -neg <= threshold:
            break
        if not alive[a] or b not in adjacent[a]:
            continue
        e = adjacent[a][b]
        if abs(edge_sum[e] / (edge_count[e] + prior_faces) + neg) > 1e-12:
            continue
        if len(adjacent[a]) < len(adjacent[b]):
            a, b = b, a
        parent[b] = a
        alive[b] = False
        of_a = adjacent[a]
        del of_a[b]
        for other, e2 in adjacent[b].items():
            if other == a:
                continue
            del adjacent[other][b]
            if other in of_a:
                cur = of_a[other]
            else:
                if ne == cap:
                    cap *= 2
                    sum2 = np.zeros(cap, np.float64)
                    count2 = np.zeros(cap, np.int64)
                    sum2[:ne] = edge_sum[:ne]
                    count2[:ne] = edge_count[:ne]
                    edge_sum, edge_count = sum2, count2
                cur = ne
                ne += 1
                of_a[other] = cur
                adjacent[other][a] = cur
            edge_sum[cur] += edge_sum[e2]
            edge_count[cur] += edge_count[e2]
            heapq.heappush(heap, (-edge_sum[cur] / (edge_count[cur] + prior_faces),
                                  min(a, other), max(a, other)))
        adjacent[b] = Dict.empty(key_type=types.int64, value_type=types.int64)
    for v in range(n_nodes):  # point every merged node at its final representative
        r = v
        while parent[r] != r:
            r = parent[r]
        parent[v] = r
    return parent


def merge(pairs: np.ndarray, sums: np.ndarray, counts: np.ndarray, threshold: float,
          prior_faces: float) -> tuple[np.ndarray, np.ndarray]:
    """(fragment ids, their representatives) of the fragments that were merged."""
    if len(pairs) == 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64)
    ids, inv = np.unique(np.asarray(pairs, np.uint64), return_inverse=True)
    inv = inv.reshape(-1, 2).astype(np.int64)
    parent = _agglomerate_kernel(np.ascontiguousarray(inv[:, 0]),
                                 np.ascontiguousarray(inv[:, 1]),
                                 np.ascontiguousarray(sums, np.float64),
                                 np.ascontiguousarray(counts, np.int64), len(ids),
                                 float(threshold), float(prior_faces))
    moved = np.flatnonzero(parent != np.arange(len(ids)))
    return ids[moved], ids[parent[moved]]


def agglomerate(pairs: np.ndarray, sums: np.ndarray, counts: np.ndarray,
                threshold: float, prior_faces: float = 0.0) -> dict[int, int]:
    """Merge fragments greedily by mean affinity while it exceeds `threshold`.

    After each merge the mean affinity to every neighbour is recomputed from summed face
    affinities and counts (waterz's MeanAffinity; one record per contact, seen from both
    fragments); ties go to the smaller (a, b) pair.
    `prior_faces` adds that many faces of affinity 0 to every contact, so a contact of a
    few voxels (a leak through one misclassified voxel) cannot merge two cells on its
    own. Returns fragment -> representative for the fragments merged away.
    """
    frag, rep = merge(pairs, sums, counts, threshold, prior_faces)
    return dict(zip(frag.tolist(), rep.tolist(), strict=True))
