"""Segmentation from affinities (pure logic, no I/O).

`seeded_segmentation` (ours): seeds are the in-plane interiors (all four in-plane
affinities above `seed_threshold`) eroded by an anisotropic distance transform (`edt`),
so a single leaky boundary voxel cannot join two cells; seeds are labelled with cc3d,
linking sections only through strong z affinities. Seeds then grow, breadth first, along
strong affinities into the boundary voxels (a watershed on a flat-ish landscape, one
pass per voxel layer). Fragments are agglomerated greedily by mean affinity on their
shared faces (the waterz criterion, exact, with a lazy heap), then segments below
`min_size` voxels are removed. Everything is numpy / cc3d / fastremap / edt.

`threshold_components` is the baseline: threshold affinities, connected components.
Affinities use the waterz layout: `affs[c, z, y, x]` links a voxel to its -1 neighbour
along axis c.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import cc3d
import edt
import fastremap
import numpy as np


@dataclass(frozen=True)
class SegParams:
    """Knobs of the seeded segmentation. Defaults chosen on the shipped affinity network's
    predictions for nine synthetic 64^3 volumes and checked on six others (BENCHMARKS.md)."""

    seed_threshold: float = 0.8
    seed_distance_nm: float = 20.0
    grow_threshold: float = 0.7
    merge_threshold: float = 0.5
    prior_faces: float = 0.0
    grow_layers: int = 3
    min_size: int = 200
    min_seed: int = 4


def _check(affs: np.ndarray) -> None:
    if affs.ndim != 4 or affs.shape[0] != 3:
        raise ValueError(f"affinities must have shape (3, z, y, x), got {affs.shape}")


def _vcg(mask: np.ndarray, strong: list[np.ndarray | None]) -> np.ndarray:
    """cc3d 6-connected voxel graph: bits for +/- each axis where `strong[c]` links v, v-1."""
    g = np.zeros(mask.shape, np.uint8)
    for c, s in enumerate(strong):
        if s is None:
            continue
        sl = [slice(None)] * 3
        sl[c] = slice(1, None)
        lo = [slice(None)] * 3
        lo[c] = slice(None, -1)
        link = s[tuple(sl)] & mask[tuple(sl)] & mask[tuple(lo)]
        g[tuple(sl)] |= (link * np.uint8(2 << (2 * c))).astype(np.uint8)  # -axis bit
        g[tuple(lo)] |= (link * np.uint8(1 << (2 * c))).astype(np.uint8)  # +axis bit
    return g


def interior(affs: np.ndarray) -> np.ndarray:
    """Minimum of the four in-plane affinities of each voxel (volume edges ignored)."""
    s = np.ones(affs.shape[1:], np.float32)
    s[:, 1:, :] = np.minimum(s[:, 1:, :], affs[1][:, 1:, :])
    s[:, :-1, :] = np.minimum(s[:, :-1, :], affs[1][:, 1:, :])
    s[:, :, 1:] = np.minimum(s[:, :, 1:], affs[2][:, :, 1:])
    s[:, :, :-1] = np.minimum(s[:, :, :-1], affs[2][:, :, 1:])
    return s


def _drop_small(lab: np.ndarray, min_voxels: int) -> np.ndarray:
    """Zero labels with fewer than `min_voxels` voxels (labels already connected)."""
    if lab.dtype == np.uint64 or lab.dtype.kind == "i" or int(lab.max()) > 1 << 28:
        lab, _ = fastremap.renumber(lab)
        lab = np.ascontiguousarray(lab, dtype=np.uint32)
    counts = np.bincount(lab.reshape(-1))
    small = counts < min_voxels
    small[0] = False
    if small.any():
        keep = np.arange(len(counts), dtype=lab.dtype)
        keep[small] = 0
        lab = keep[lab]
    return lab


def make_seeds(affs: np.ndarray, voxel_size_zyx: tuple[float, float, float],
               p: SegParams) -> np.ndarray:
    """Seed fragments (uint32): eroded interiors, cc3d-labelled along strong affinities."""
    core = interior(affs) > p.seed_threshold
    dt = edt.edt(core, anisotropy=voxel_size_zyx, black_border=False, parallel=2)
    mask = dt > p.seed_distance_nm
    strong = [affs[c] > p.seed_threshold for c in range(3)]
    g = _vcg(mask, list(strong))
    lab = np.ascontiguousarray(cc3d.color_connectivity_graph(g, connectivity=6))
    lab[~mask] = 0
    lab = _drop_small(lab, p.min_seed)
    lab, _ = fastremap.renumber(lab, in_place=True)
    return np.ascontiguousarray(lab, dtype=np.uint32)


def grow(labels: np.ndarray, affs: np.ndarray, threshold: float, max_iter: int = 64) -> None:
    """Grow labels in place into unlabelled voxels across affinities above `threshold`.

    Each pass assigns every unlabelled voxel that touches a labelled one through a strong
    edge the label of its strongest such edge (breadth-first watershed).
    """
    if not labels.flags.c_contiguous:
        raise ValueError("labels must be C-contiguous to grow in place")
    shape = labels.shape
    strides = (shape[1] * shape[2], shape[2], 1)
    flat = labels.reshape(-1)
    af = [affs[c].reshape(-1) for c in range(3)]
    strong_any = np.zeros(shape, bool)
    for c in range(3):
        st = affs[c] > threshold
        strong_any |= st
        sl = [slice(None)] * 3
        sl[c] = slice(None, -1)
        hi = [slice(None)] * 3
        hi[c] = slice(1, None)
        strong_any[tuple(sl)] |= st[tuple(hi)]
    todo = np.flatnonzero(strong_any.reshape(-1) & (flat == 0))
    for _ in range(max_iter):
        if len(todo) == 0:
            break
        coords = np.unravel_index(todo, shape)
        best_lab = np.zeros(len(todo), labels.dtype)
        best_aff = np.full(len(todo), threshold, np.float32)
        for c in range(3):
            # neighbour at -1: edge stored at the voxel itself
            ok = coords[c] > 0
            idx = np.nonzero(ok)[0]
            n = todo[idx] - strides[c]
            a = af[c][todo[idx]]
            lab_n = flat[n]
            better = (lab_n != 0) & (a > best_aff[idx])
            best_lab[idx[better]] = lab_n[better]
            best_aff[idx[better]] = a[better]
            # neighbour at +1: edge stored at the neighbour
            ok = coords[c] < shape[c] - 1
            idx = np.nonzero(ok)[0]
            n = todo[idx] + strides[c]
            a = af[c][n]
            lab_n = flat[n]
            better = (lab_n != 0) & (a > best_aff[idx])
            best_lab[idx[better]] = lab_n[better]
            best_aff[idx[better]] = a[better]
        done = best_lab != 0
        if not done.any():
            break
        flat[todo[done]] = best_lab[done]
        todo = todo[~done]


def rescue(labels: np.ndarray, affs: np.ndarray, threshold: float, min_voxels: int) -> None:
    """Label, in place, strongly linked pieces that no seed reached (thin processes)."""
    strong = [affs[c] > threshold for c in range(3)]
    free = labels == 0
    g = _vcg(free, list(strong))
    has_link = g != 0
    if not has_link.any():
        return
    extra = np.ascontiguousarray(cc3d.color_connectivity_graph(g, connectivity=6))
    extra[~has_link] = 0
    extra = _drop_small(extra, min_voxels)
    m = extra != 0
    labels[m] = extra[m].astype(labels.dtype) + labels.dtype.type(labels.max())


def region_graph(labels: np.ndarray, affs: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                 np.ndarray]:
    """Fragment adjacency: pairs (E, 2) with a < b, summed affinity and face count."""
    keys: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    big = np.uint64(int(labels.max()) + 1)
    for c in range(3):
        hi = [slice(None)] * 3
        hi[c] = slice(1, None)
        lo = [slice(None)] * 3
        lo[c] = slice(None, -1)
        a = labels[tuple(hi)]
        b = labels[tuple(lo)]
        m = (a != b) & (a != 0) & (b != 0)
        aa, bb = a[m], b[m]
        keys.append(np.minimum(aa, bb) * big + np.maximum(aa, bb))
        vals.append(affs[c][tuple(hi)][m].astype(np.float64))
    return aggregate_edges(np.concatenate(keys), np.concatenate(vals), big)


def aggregate_edges(keys: np.ndarray, vals: np.ndarray, big: np.uint64,
                    counts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray,
                                                               np.ndarray]:
    """Group (key, value[, count]) rows by key = a * big + b."""
    if len(keys) == 0:
        return np.zeros((0, 2), np.uint64), np.zeros(0), np.zeros(0, np.int64)
    uk, inv = np.unique(keys, return_inverse=True)
    sums = np.bincount(inv, weights=vals)
    cnt = np.bincount(inv, weights=counts).astype(np.int64) if counts is not None \
        else np.bincount(inv).astype(np.int64)
    pairs = np.stack([uk // big, uk % big], axis=1).astype(np.uint64)
    return pairs, sums, cnt


def agglomerate(pairs: np.ndarray, sums: np.ndarray, counts: np.ndarray,
                threshold: float, prior_faces: float = 0.0) -> dict[int, int]:
    """Merge fragments greedily by mean affinity while it exceeds `threshold`.

    After each merge the mean affinity to every neighbour is recomputed from summed face
    affinities and counts (waterz's MeanAffinity). `prior_faces` adds that many faces of
    affinity 0 to every contact, so a contact of a few voxels (a leak through one
    misclassified voxel) cannot merge two cells on its own. Returns fragment ->
    representative.
    """
    k0 = float(prior_faces)
    adj: dict[int, dict[int, list[float]]] = {}
    heap: list[tuple[float, int, int]] = []
    for (a, b), s, n in zip(pairs.tolist(), sums.tolist(), counts.tolist(), strict=True):
        adj.setdefault(a, {})[b] = [s, n]
        adj.setdefault(b, {})[a] = [s, n]
        heap.append((-s / (n + k0), a, b))
    heapq.heapify(heap)
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    while heap:
        neg, a, b = heapq.heappop(heap)
        if -neg <= threshold:
            break
        if a not in adj or b not in adj[a]:
            continue
        s, n = adj[a][b]
        if abs(s / (n + k0) + neg) > 1e-12:
            continue
        if len(adj[a]) < len(adj[b]):
            a, b = b, a
        parent[b] = a
        del adj[a][b]
        for nb, (s2, n2) in adj.pop(b).items():
            if nb == a:
                continue
            del adj[nb][b]
            cur = adj[a].get(nb)
            if cur is None:
                cur = [0.0, 0]
                adj[a][nb] = cur
                adj[nb][a] = cur
            cur[0] += s2
            cur[1] += n2
            heapq.heappush(heap, (-cur[0] / (cur[1] + k0), min(a, nb), max(a, nb)))
    return {x: find(x) for x in parent}


def relabel(labels: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    """Apply a fragment -> segment mapping in place (fastremap)."""
    if mapping:
        fastremap.remap(labels, mapping, preserve_missing_labels=True, in_place=True)
    return labels


def size_filter(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Zero segments smaller than `min_size` voxels and renumber 1..N; returns uint64."""
    labels = _drop_small(labels, min_size)
    labels, _ = fastremap.renumber(labels, in_place=True)
    return np.ascontiguousarray(labels, dtype=np.uint64)


def seeded_segmentation(affs: np.ndarray, voxel_size_zyx: tuple[float, float, float],
                        params: SegParams | None = None) -> np.ndarray:
    """Our segmentation: seeds, growth, mean-affinity agglomeration, size filter."""
    _check(affs)
    p = params or SegParams()
    affs = np.ascontiguousarray(affs, dtype=np.float32)
    lab = make_seeds(affs, voxel_size_zyx, p)
    grow(lab, affs, p.grow_threshold, p.grow_layers)
    rescue(lab, affs, p.grow_threshold, p.min_seed)
    grow(lab, affs, p.grow_threshold)
    pairs, sums, cnt = region_graph(lab, affs)
    mapping = agglomerate(pairs, sums, cnt, p.merge_threshold, p.prior_faces)
    relabel(lab, mapping)
    return size_filter(lab, p.min_size)


def threshold_components(affs: np.ndarray, threshold: float = 0.5,
                         min_size: int = 200) -> np.ndarray:
    """Baseline: keep affinities above `threshold`, label connected components."""
    _check(affs)
    strong = [affs[c] > threshold for c in range(3)]
    mask = np.zeros(affs.shape[1:], bool)
    for c in range(3):
        mask |= strong[c]
        sl = [slice(None)] * 3
        sl[c] = slice(None, -1)
        hi = [slice(None)] * 3
        hi[c] = slice(1, None)
        mask[tuple(sl)] |= strong[c][tuple(hi)]
    g = _vcg(mask, list(strong))
    lab = np.ascontiguousarray(cc3d.color_connectivity_graph(g, connectivity=6))
    lab[~mask] = 0
    return size_filter(lab, min_size)
