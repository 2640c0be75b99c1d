"""Segmentation from affinities (pure logic, no I/O).

`seeded_segmentation` (ours): seeds are the in-plane interiors (all four in-plane
affinities above `seed_threshold`) eroded by an anisotropic ball of radius
`seed_distance_nm` (exactly `edt(core) > seed_distance_nm`), so a single leaky boundary
voxel cannot join two cells; seeds are labelled as connected components, linking
sections only through strong z affinities. Seeds then grow, breadth first, along strong
affinities into the boundary voxels (a watershed on a flat-ish landscape, one layer of
voxels per pass, each voxel taking the label of its strongest strong edge). Strongly
linked pieces no seed reached are rescued as fragments of their own, growth resumes,
fragments are agglomerated greedily by mean affinity on their shared faces (the waterz
criterion, exact, with a lazy heap), then segments below `min_size` voxels are removed.

Every voxel-wise stage is a compiled numba kernel (`@njit(cache=True)`; the passes
without an order dependence run on numba's threads, over sections; the first call in a
fresh environment compiles them, later processes load them from the cache). Connected
components are a union-find over a raster scan whose labels come out in order of first
appearance, as cc3d's do.

`threshold_components` is the baseline: threshold affinities, connected components.
Affinities use the waterz layout: `affs[c, z, y, x]` links a voxel to its -1 neighbour
along axis c.
"""

from __future__ import annotations

import heapq
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import fastremap
import numpy as np
from numba import njit, prange, types
from numba.core.errors import NumbaPerformanceWarning
from numba.typed import Dict, List


class LabelStore(Protocol):
    """Where blockwise segmentation keeps labels between passes (a zarr array in the
    pipeline): write a block of sections at z0, read sections z0..z1 back."""

    def write(self, z0: int, labels: np.ndarray) -> None: ...

    def read(self, z0: int, z1: int) -> np.ndarray: ...


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

    def __post_init__(self) -> None:
        # seeds link only where growth could also pass (one set of edge flags serves both)
        if self.seed_threshold < self.grow_threshold:
            raise ValueError(f"seed_threshold ({self.seed_threshold}) must be at least "
                             f"grow_threshold ({self.grow_threshold})")


def _check(affs: np.ndarray) -> None:
    if affs.ndim != 4 or affs.shape[0] != 3:
        raise ValueError(f"affinities must have shape (3, z, y, x), got {affs.shape}")


def _f32(affs: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(affs, dtype=np.float32)


# ---------------------------------------------------------------------------------------
# kernels

# _SEQUENTIAL_NOTE: numba compiles a plain loop nest several times faster under
# `parallel=True` even where no loop is a prange (measured here, one thread: a full
# growth pass over 256^3 voxels 0.26 s -> 0.06 s), so the kernels that must stay
# sequential (union-find, frontier queues, first-appearance numbering) carry the flag too,
# and numba's note that it found nothing to parallelise in them is silenced.
warnings.filterwarnings("ignore", category=NumbaPerformanceWarning,
                        message=r"(?s)\s*The keyword argument 'parallel=True' was specified "
                                r"but no transformation for parallel execution was possible")


# Voxel flags, one byte a voxel, written by `_scan_kernel`: bit d (d = 0..5) says the edge
# to the face neighbour in direction d (-z, +z, -y, +y, -x, +x) exists and its affinity
# is above the growth threshold; _CORE says all in-plane affinities are above the seed
# threshold; _MEMBER marks the voxels a connected-components pass labels (eroded seeds,
# then the pieces a rescue labels). Voxels with no flag can never be labelled, so every
# later pass visits only the "active" voxels, listed in raster order by `_active_kernel`
# (about a sixth of a synthetic volume).
_EDGES = 63
_CORE = 64
_MEMBER = 128


@njit(cache=True, parallel=True)
def _scan_kernel(affs: np.ndarray, thr: np.float32, core_thr: np.float32,
                 flags: np.ndarray, counts: np.ndarray) -> None:  # pragma: no cover
    """Edge bits and _CORE of every voxel; counts[z] = flagged voxels of section z."""
    nz, ny, nx = flags.shape
    for z in prange(nz):
        n = 0
        for y in range(ny):
            for x in range(nx):
                f = 0
                m = np.float32(1.0)
                if z > 0 and affs[0, z, y, x] > thr:
                    f |= 1
                if z < nz - 1 and affs[0, z + 1, y, x] > thr:
                    f |= 2
                if y > 0:
                    a = affs[1, z, y, x]
                    m = min(m, a)
                    if a > thr:
                        f |= 4
                if y < ny - 1:
                    a = affs[1, z, y + 1, x]
                    m = min(m, a)
                    if a > thr:
                        f |= 8
                if x > 0:
                    a = affs[2, z, y, x]
                    m = min(m, a)
                    if a > thr:
                        f |= 16
                if x < nx - 1:
                    a = affs[2, z, y, x + 1]
                    m = min(m, a)
                    if a > thr:
                        f |= 32
                if m > core_thr:
                    f |= _CORE
                flags[z, y, x] = f
                if f != 0:
                    n += 1
        counts[z] = n


@njit(cache=True, parallel=True)
def _active_kernel(flags: np.ndarray, starts: np.ndarray, act: np.ndarray,
                   low: np.ndarray) -> None:  # pragma: no cover - compiled
    """Flat indices of the flagged voxels, raster order (section z from starts[z]), and
    which -1 neighbours they have (`low`: 1 along z, 2 along y, 4 along x)."""
    nz, ny, nx = flags.shape
    for z in prange(nz):
        k = starts[z]
        for y in range(ny):
            for x in range(nx):
                if flags[z, y, x] != 0:
                    act[k] = (z * ny + y) * nx + x
                    low[k] = (z > 0) | ((y > 0) << 1) | ((x > 0) << 2)
                    k += 1


@njit(cache=True, parallel=True)
def _erode_kernel(ff: np.ndarray, act: np.ndarray, shape: tuple[int, int, int],
                  dz: np.ndarray, dy: np.ndarray,
                  kmax: np.ndarray) -> None:  # pragma: no cover - compiled
    """Set _MEMBER on the _CORE voxels of `act` with no non-core voxel in any row
    (z + dz, y + dy) within kmax along x (rows outside the volume are ignored)."""
    nz, ny, nx = shape
    sz = ny * nx
    for i in prange(len(act)):
        v = act[i]
        if ff[v] & _CORE == 0:
            continue
        z = v // sz
        y = (v - z * sz) // nx
        x = v - z * sz - y * nx
        keep = True
        for j in range(len(dz)):
            zz = z + dz[j]
            yy = y + dy[j]
            if zz < 0 or zz >= nz or yy < 0 or yy >= ny:
                continue
            base = zz * sz + yy * nx
            for xx in range(max(x - kmax[j], 0), min(x + kmax[j], nx - 1) + 1):
                if ff[base + xx] & _CORE == 0:
                    keep = False
                    break
            if not keep:
                break
        if keep:
            ff[v] |= _MEMBER


@njit(cache=True, inline="always")
def _find(parent: np.ndarray, v: int) -> int:  # pragma: no cover - compiled
    while parent[v] != v:
        parent[v] = parent[parent[v]]
        v = parent[v]
    return v


@njit(cache=True, inline="always")
def _union(parent: np.ndarray, root: int, other: int) -> int:  # pragma: no cover
    """Join the sets of `root` (0 = none yet) and the root `other`; the smaller wins."""
    if root == 0:
        return other
    if other != root:
        lo = min(other, root)
        parent[max(other, root)] = lo
        return lo
    return root


@njit(cache=True, parallel=True)  # sequential: see _SEQUENTIAL_NOTE
def _components_kernel(ff: np.ndarray, bit: int, act: np.ndarray,
                       shape: tuple[int, int, int], a0: np.ndarray, a1: np.ndarray,
                       a2: np.ndarray, thr: np.float32, min_size: int, lf: np.ndarray,
                       offset: int) -> int:  # pragma: no cover - compiled
    """Label the voxels of `act` flagged `bit` (a mask of flag bits: any of them), linked
    by affinities > thr to flagged face neighbours, into `lf` (flat labels). thr is at
    least the edge bits' threshold, so an edge bit says where a neighbour is.

    One raster pass gives each voxel a provisional label (a new one where no earlier
    neighbour links to it; unions keep the smaller label, so a component's root is the
    label of its first voxel); components are then numbered in order of first appearance.
    Those under `min_size` voxels get 0, the others consecutive ids from offset + 1.
    Other voxels are left untouched. Returns the number of components kept.
    """
    _, ny, nx = shape
    sz = ny * nx
    parent = np.empty(len(act) + 1, np.int64)
    n = 0
    for i in range(len(act)):
        v = act[i]
        f = ff[v]
        if f & bit == 0:
            continue
        root = 0
        if f & 16 != 0 and ff[v - 1] & bit != 0 and a2[v] > thr:
            root = _find(parent, lf[v - 1])
        if f & 4 != 0 and ff[v - nx] & bit != 0 and a1[v] > thr:
            root = _union(parent, root, _find(parent, lf[v - nx]))
        if f & 1 != 0 and ff[v - sz] & bit != 0 and a0[v] > thr:
            root = _union(parent, root, _find(parent, lf[v - sz]))
        if root == 0:
            n += 1
            parent[n] = n
            root = n
        lf[v] = root
    for p in range(1, n + 1):  # parent[p] <= p: one forward pass reaches every root
        parent[p] = parent[parent[p]]
    sizes = np.zeros(n + 1, np.int64)
    for i in range(len(act)):
        v = act[i]
        if ff[v] & bit != 0:
            sizes[parent[lf[v]]] += 1
    lut = np.zeros(n + 1, np.int64)
    kept = 0
    for p in range(1, n + 1):
        if parent[p] == p and sizes[p] >= min_size:
            kept += 1
            lut[p] = offset + kept
    _final_ids(ff, bit, act, parent, lut, lf)
    return kept


@njit(cache=True, parallel=True)
def _final_ids(ff: np.ndarray, bit: int, act: np.ndarray, parent: np.ndarray,
               lut: np.ndarray, lf: np.ndarray) -> None:  # pragma: no cover - compiled
    for i in prange(len(act)):
        v = act[i]
        if ff[v] & bit != 0:
            lf[v] = lut[parent[lf[v]]]


@njit(cache=True, parallel=True)
def _mark_linked_free(ff: np.ndarray, act: np.ndarray, lf: np.ndarray,
                      sz: int, nx: int) -> int:  # pragma: no cover - compiled
    """_MEMBER on exactly the unlabelled voxels with a strong edge to an unlabelled
    neighbour (the only ones that can be in a component of two voxels or more)."""
    n = 0
    for i in prange(len(act)):
        v = act[i]
        f = ff[v] & ~_MEMBER
        if lf[v] == 0 and ((f & 1 != 0 and lf[v - sz] == 0) or (f & 2 != 0 and lf[v + sz] == 0)
                           or (f & 4 != 0 and lf[v - nx] == 0) or (f & 8 != 0 and lf[v + nx] == 0)
                           or (f & 16 != 0 and lf[v - 1] == 0) or (f & 32 != 0 and lf[v + 1] == 0)):
            f |= _MEMBER
            n += 1
        ff[v] = f
    return n


@njit(cache=True, inline="always")
def _best(lf: np.ndarray, ff: np.ndarray, a0: np.ndarray, a1: np.ndarray,
          a2: np.ndarray, v: int, sz: int, nx: int, thr: np.float32,
          sent: int) -> int:  # pragma: no cover - compiled
    """Label of the strongest edge above thr to a labelled neighbour (0 if none).

    Order -z, +z, -y, +y, -x, +x; a later edge wins only if strictly stronger.
    """
    f = ff[v]
    best = 0
    ba = thr
    if f & 1:
        n = lf[v - sz]
        if n != 0 and n != sent and a0[v] > ba:
            best = n
            ba = a0[v]
    if f & 2:
        n = lf[v + sz]
        if n != 0 and n != sent and a0[v + sz] > ba:
            best = n
            ba = a0[v + sz]
    if f & 4:
        n = lf[v - nx]
        if n != 0 and n != sent and a1[v] > ba:
            best = n
            ba = a1[v]
    if f & 8:
        n = lf[v + nx]
        if n != 0 and n != sent and a1[v + nx] > ba:
            best = n
            ba = a1[v + nx]
    if f & 16:
        n = lf[v - 1]
        if n != 0 and n != sent and a2[v] > ba:
            best = n
            ba = a2[v]
    if f & 32:
        n = lf[v + 1]
        if n != 0 and n != sent and a2[v + 1] > ba:
            best = n
    return best


@njit(cache=True, parallel=True)
def _scan_layer(lf: np.ndarray, ff: np.ndarray, a0: np.ndarray, a1: np.ndarray,
                a2: np.ndarray, act: np.ndarray, sz: int, nx: int, thr: np.float32,
                sent: int, buf: np.ndarray) -> int:  # pragma: no cover - compiled
    """The labels of one growth layer over all active voxels (threaded): buf[i] gets the
    `_best` label of unlabelled voxel act[i] (0 elsewhere). Returns the count."""
    n = 0
    for i in prange(len(act)):
        v = act[i]
        b = 0
        if lf[v] == 0:
            b = _best(lf, ff, a0, a1, a2, v, sz, nx, thr, sent)
            if b != 0:
                n += 1
        buf[i] = b
    return n


@njit(cache=True, parallel=True)
def _write_labels(lf: np.ndarray, idx: np.ndarray, vals: np.ndarray,
                  n: int) -> None:  # pragma: no cover - compiled
    """lf[idx[i]] = vals[i] where vals[i] != 0, i < n. A kernel of its own: numba fuses
    consecutive parallel loops, and a layer's labels must be chosen before any is
    written."""
    for i in prange(n):
        if vals[i] != 0:
            lf[idx[i]] = vals[i]


@njit(cache=True, parallel=True)  # sequential: see _SEQUENTIAL_NOTE
def _collect(buf: np.ndarray, act: np.ndarray,
             front: np.ndarray) -> int:  # pragma: no cover - compiled
    """The voxels act[i] with buf[i] != 0, in raster order."""
    n = 0
    for i in range(len(act)):
        if buf[i] != 0:
            front[n] = act[i]
            n += 1
    return n


@njit(cache=True, parallel=True)  # sequential: see _SEQUENTIAL_NOTE
def _next_layer(lf: np.ndarray, ff: np.ndarray, front: np.ndarray, nf: int, sz: int,
                nx: int, sent: int, cand: np.ndarray) -> int:  # pragma: no cover
    """Unlabelled neighbours across strong edges of the voxels just labelled, each once
    (marked `sent`)."""
    offs = (-sz, sz, -nx, nx, -1, 1)
    nc = 0
    for i in range(nf):
        u = front[i]
        f = ff[u]
        for d in range(6):
            if f & (1 << d) != 0:
                w = u + offs[d]
                if lf[w] == 0:
                    lf[w] = sent
                    cand[nc] = w
                    nc += 1
    return nc


@njit(cache=True, parallel=True)
def _assign_layer(lf: np.ndarray, ff: np.ndarray, a0: np.ndarray, a1: np.ndarray,
                  a2: np.ndarray, cand: np.ndarray, nc: int, sz: int, nx: int,
                  thr: np.float32, sent: int,
                  fl: np.ndarray) -> None:  # pragma: no cover - compiled
    for i in prange(nc):
        fl[i] = _best(lf, ff, a0, a1, a2, cand[i], sz, nx, thr, sent)


@njit(cache=True, parallel=True)
def _count_free(lf: np.ndarray, act: np.ndarray) -> int:  # pragma: no cover - compiled
    n = 0
    for i in prange(len(act)):
        if lf[act[i]] == 0:
            n += 1
    return n


@njit(cache=True, parallel=True)  # sequential: see _SEQUENTIAL_NOTE
def _grow_kernel(lf: np.ndarray, ff: np.ndarray, a0: np.ndarray, a1: np.ndarray,
                 a2: np.ndarray, act: np.ndarray, sz: int, nx: int, thr: np.float32,
                 max_iter: int, sent: int) -> int:  # pragma: no cover - compiled
    """Synchronous breadth-first growth; returns the number of layers grown.

    Each layer gives every unlabelled voxel with a strong edge to a voxel labelled before
    the layer the label of its strongest such edge. While layers are big (over 1/16 of
    the active voxels) a layer is a threaded pass over the active voxels (`_scan_layer`);
    then the growth follows the frontier: a layer's candidates are marked `sent`, given
    their label (`_best` ignores marks), then written, and the next layer's candidates
    come from the voxels just labelled. Both ways give the same labels. The voxel loops
    live in helpers that reassign no array (numba would otherwise count references
    inside them).
    """
    n_free = _count_free(lf, act)
    if max_iter <= 0 or n_free == 0:
        return 0
    buf = np.empty(len(act), lf.dtype)
    big = len(act) // 16
    layers = 0
    while layers < max_iter:
        nc = _scan_layer(lf, ff, a0, a1, a2, act, sz, nx, thr, sent, buf)
        _write_labels(lf, act, buf, len(act))
        if nc == 0:
            return layers
        layers += 1
        if nc <= big:
            break
    if layers >= max_iter:
        return layers
    front = np.empty(n_free, act.dtype)
    cand = np.empty(n_free, act.dtype)
    fl = np.empty(n_free, lf.dtype)
    nf = _collect(buf, act, front)
    nc = _next_layer(lf, ff, front, nf, sz, nx, sent, cand)
    while nc > 0:
        _assign_layer(lf, ff, a0, a1, a2, cand, nc, sz, nx, thr, sent, fl)
        _write_labels(lf, cand, fl, nc)
        layers += 1
        if layers >= max_iter:
            break
        nc = _next_layer(lf, ff, cand, nc, sz, nx, sent, front)
        cand, front = front, cand
    return layers


@njit(cache=True, inline="always")
def _slot(a: int, b: int, mask: int) -> int:  # pragma: no cover - compiled
    h = (a * np.int64(-7046029254386353131)) ^ (b * np.int64(-4417276706812531889))
    return int((h >> 17) & mask)


@njit(cache=True)
def _rehash(ea: np.ndarray, eb: np.ndarray, ne: int,
            cap: int) -> np.ndarray:  # pragma: no cover - compiled
    table = np.zeros(cap, np.int64)  # edge index + 1; 0 = empty
    for k in range(ne):
        t = _slot(ea[k], eb[k], cap - 1)
        while table[t] != 0:
            t = (t + 1) & (cap - 1)
        table[t] = k + 1
    return table


_RG_CHUNK = 1 << 16  # voxels visited between checks of the contact table's room


@njit(cache=True)
def _region_graph_kernel(lf: np.ndarray, a0: np.ndarray, a1: np.ndarray, a2: np.ndarray,
                         visit: np.ndarray, low: np.ndarray, sz: int, nx: int) -> tuple[
        np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Distinct (a < b) contacts with float64 sums accumulated in raster order (per
    voxel: its -z, -y, -x faces).

    `visit` lists (raster order) every labelled voxel, maybe with unlabelled ones, and
    `low` which -1 neighbours each has; each contact is seen from its later voxel.
    Open-addressing hash on (a, b), grown (only between chunks of visits, so the inner
    loops never reassign an array) to keep room for a chunk's worth of new contacts.
    """
    cap = 1 << 12
    while cap < 12 * _RG_CHUNK:
        cap *= 2
    table = np.zeros(cap, np.int64)
    ea = np.empty(cap // 2, np.int64)
    eb = np.empty(cap // 2, np.int64)
    es = np.zeros(cap // 2, np.float64)
    ec = np.zeros(cap // 2, np.int64)
    ne = 0
    last = np.full(6, -1, np.int64)  # per axis, the last contact: a, b (its edge: eix)
    eix = np.full(3, -1, np.int64)
    for i0 in range(0, len(visit), _RG_CHUNK):
        if 2 * (ne + 3 * _RG_CHUNK) > cap:
            cap *= 2
            ea2 = np.empty(cap // 2, np.int64)
            eb2 = np.empty(cap // 2, np.int64)
            es2 = np.zeros(cap // 2, np.float64)
            ec2 = np.zeros(cap // 2, np.int64)
            ea2[:ne] = ea[:ne]
            eb2[:ne] = eb[:ne]
            es2[:ne] = es[:ne]
            ec2[:ne] = ec[:ne]
            ea, eb, es, ec = ea2, eb2, es2, ec2
            table = _rehash(ea, eb, ne, cap)
        ne = _region_graph_chunk(lf, a0, a1, a2, visit, low, i0,
                                 min(i0 + _RG_CHUNK, len(visit)), sz, nx, table, ea, eb,
                                 es, ec, ne, last, eix)
    return ea[:ne], eb[:ne], es[:ne], ec[:ne]


@njit(cache=True, inline="always")
def _contact(p: int, q: int, w: np.float32, c: int, table: np.ndarray, ea: np.ndarray,
             eb: np.ndarray, es: np.ndarray, ec: np.ndarray, ne: int, last: np.ndarray,
             eix: np.ndarray) -> int:  # pragma: no cover - compiled
    """Add one face of affinity w between p and q (along axis c) to the hash."""
    a = min(p, q)
    b = max(p, q)
    if a != last[2 * c] or b != last[2 * c + 1]:
        mask = len(table) - 1
        s = _slot(a, b, mask)
        while True:
            e = table[s] - 1
            if e < 0:
                e = ne
                ne += 1
                table[s] = e + 1
                ea[e] = a
                eb[e] = b
                break
            if ea[e] == a and eb[e] == b:
                break
            s = (s + 1) & mask
        last[2 * c] = a
        last[2 * c + 1] = b
        eix[c] = e
    e = eix[c]
    es[e] += np.float64(w)
    ec[e] += 1
    return ne


@njit(cache=True, parallel=True)  # sequential: see _SEQUENTIAL_NOTE
def _region_graph_chunk(lf: np.ndarray, a0: np.ndarray, a1: np.ndarray, a2: np.ndarray,
                        visit: np.ndarray, low: np.ndarray, i0: int, i1: int, sz: int,
                        nx: int, table: np.ndarray, ea: np.ndarray, eb: np.ndarray,
                        es: np.ndarray, ec: np.ndarray, ne: int, last: np.ndarray,
                        eix: np.ndarray) -> int:  # pragma: no cover - compiled
    """Contacts of visits i0..i1 into the hash (which has room for them)."""
    for i in range(i0, i1):
        v = visit[i]
        p = int(lf[v])
        if p == 0:
            continue
        lo = low[i]
        if lo & 1 != 0:
            q = int(lf[v - sz])
            if q != p and q != 0:
                ne = _contact(p, q, a0[v], 0, table, ea, eb, es, ec, ne, last, eix)
        if lo & 2 != 0:
            q = int(lf[v - nx])
            if q != p and q != 0:
                ne = _contact(p, q, a1[v], 1, table, ea, eb, es, ec, ne, last, eix)
        if lo & 4 != 0:
            q = int(lf[v - 1])
            if q != p and q != 0:
                ne = _contact(p, q, a2[v], 2, table, ea, eb, es, ec, ne, last, eix)
    return ne


@njit(cache=True)
def _agglomerate_kernel(pa: np.ndarray, pb: np.ndarray, sums: np.ndarray,
                        counts: np.ndarray, n_nodes: int, threshold: float,
                        k0: float) -> np.ndarray:  # pragma: no cover - compiled
    """waterz MeanAffinity with a lazy heap; returns parent (merged node -> absorber)."""
    ne = len(pa)
    cap = max(ne, 16)
    es = np.zeros(cap, np.float64)
    ec = np.zeros(cap, np.int64)
    es[:ne] = sums
    ec[:ne] = counts
    adj = List()
    for _ in range(n_nodes):
        adj.append(Dict.empty(key_type=types.int64, value_type=types.int64))
    alive = np.ones(n_nodes, np.bool_)
    heap = List()
    for e in range(ne):
        a = pa[e]
        b = pb[e]
        adj[a][b] = e
        adj[b][a] = e
        heap.append((-es[e] / (ec[e] + k0), a, b))
    heapq.heapify(heap)
    parent = np.arange(n_nodes)
    while len(heap) > 0:
        neg, a, b = heapq.heappop(heap)
        if -neg <= threshold:
            break
        if not alive[a] or b not in adj[a]:
            continue
        e = adj[a][b]
        if abs(es[e] / (ec[e] + k0) + neg) > 1e-12:
            continue
        if len(adj[a]) < len(adj[b]):
            a, b = b, a
        parent[b] = a
        alive[b] = False
        da = adj[a]
        del da[b]
        for nb, e2 in adj[b].items():
            if nb == a:
                continue
            del adj[nb][b]
            if nb in da:
                cur = da[nb]
            else:
                if ne == cap:
                    cap *= 2
                    es2 = np.zeros(cap, np.float64)
                    ec2 = np.zeros(cap, np.int64)
                    es2[:ne] = es[:ne]
                    ec2[:ne] = ec[:ne]
                    es, ec = es2, ec2
                cur = ne
                ne += 1
                da[nb] = cur
                adj[nb][a] = cur
            es[cur] += es[e2]
            ec[cur] += ec[e2]
            heapq.heappush(heap, (-es[cur] / (ec[cur] + k0), min(a, nb), max(a, nb)))
        adj[b] = Dict.empty(key_type=types.int64, value_type=types.int64)
    for v in range(n_nodes):  # point every merged node at its final representative
        r = v
        while parent[r] != r:
            r = parent[r]
        parent[v] = r
    return parent


@njit(cache=True)
def _apply_lut(labels: np.ndarray, lut: np.ndarray) -> None:  # pragma: no cover
    flat = labels.reshape(-1)
    for i in range(flat.size):
        v = flat[i]
        if v < len(lut):
            flat[i] = lut[v]


@njit(cache=True, inline="always")
def _new_ids(order: np.ndarray, n_seen: int, counts: np.ndarray,
             min_size: int) -> np.ndarray:  # pragma: no cover - compiled
    """Final ids 1..N of the segments `order[:n_seen]` (order of first appearance) with at
    least min_size voxels; 0 for the others."""
    new = np.zeros(len(counts), np.int64)
    nxt = 0
    for k in range(n_seen):
        s = order[k]
        if s != 0 and counts[s] >= min_size:
            nxt += 1
            new[s] = nxt
    return new


@njit(cache=True, parallel=True)  # sequential: see _SEQUENTIAL_NOTE
def _filter_renumber(labels: np.ndarray, lut: np.ndarray,
                     min_size: int) -> np.ndarray:  # pragma: no cover - compiled
    """out = lut[labels]; segments under min_size voxels -> 0; the rest 1..N in order of
    first appearance (as fastremap.renumber)."""
    flat = labels.reshape(-1)
    counts = np.zeros(len(lut), np.int64)
    order = np.empty(len(lut), np.int64)  # segments in order of first appearance
    n_seen = 0
    for i in range(flat.size):
        s = lut[flat[i]]
        if counts[s] == 0:
            order[n_seen] = s
            n_seen += 1
        counts[s] += 1
    new = _new_ids(order, n_seen, counts, min_size)
    out = np.empty(flat.size, np.uint64)
    _renumber(flat, lut, new, out)
    return out.reshape(labels.shape)


@njit(cache=True, parallel=True)
def _renumber(flat: np.ndarray, lut: np.ndarray, new: np.ndarray,
              out: np.ndarray) -> None:  # pragma: no cover - compiled
    for i in prange(flat.size):
        out[i] = new[lut[flat[i]]]


@njit(cache=True, parallel=True)  # sequential: see _SEQUENTIAL_NOTE
def _filter_renumber_active(lf: np.ndarray, act: np.ndarray, lut: np.ndarray,
                            min_size: int) -> int:  # pragma: no cover - compiled
    """`_filter_renumber` in place on flat labels that are 0 outside `act` (raster
    order). Returns N."""
    counts = np.zeros(len(lut), np.int64)
    order = np.empty(len(lut), np.int64)
    n_seen = 0
    for i in range(len(act)):
        s = lut[lf[act[i]]]
        if s != 0:
            if counts[s] == 0:
                order[n_seen] = s
                n_seen += 1
            counts[s] += 1
    new = _new_ids(order, n_seen, counts, min_size)
    _renumber_active(lf, act, lut, new)
    return int(new.max()) if len(new) else 0


@njit(cache=True, parallel=True)
def _renumber_active(lf: np.ndarray, act: np.ndarray, lut: np.ndarray,
                     new: np.ndarray) -> None:  # pragma: no cover - compiled
    for i in prange(len(act)):
        v = act[i]
        lf[v] = new[lut[lf[v]]]


# ---------------------------------------------------------------------------------------
# public stages


@dataclass(frozen=True)
class _Scan:
    """Flags of every voxel (see _CORE) and the flagged ("active") voxels, raster order."""

    flags: np.ndarray  # flat uint8
    act: np.ndarray  # flat indices, int64
    low: np.ndarray  # per active voxel, its -1 neighbours: 1 along z, 2 along y, 4 along x
    shape: tuple[int, int, int]


def _scan(affs: np.ndarray, threshold: float, core_threshold: float = math.inf) -> _Scan:
    """Edge bits at `threshold` and _CORE at `core_threshold` (affs: float32, contiguous)."""
    shape = (int(affs.shape[1]), int(affs.shape[2]), int(affs.shape[3]))
    flags = np.empty(shape, np.uint8)
    counts = np.zeros(shape[0], np.int64)
    _scan_kernel(affs, np.float32(threshold), np.float32(core_threshold), flags, counts)
    starts = np.zeros(shape[0] + 1, np.int64)
    np.cumsum(counts, out=starts[1:])
    act = np.empty(int(starts[-1]), np.int64)
    low = np.empty(len(act), np.uint8)
    _active_kernel(flags, starts, act, low)
    return _Scan(flags.reshape(-1), act, low, shape)


def _channels(affs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    flat = affs.reshape(3, -1)
    return flat[0], flat[1], flat[2]


def _ball_rows(voxel_size_zyx: tuple[float, float, float], distance_nm: float,
               nx: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows (dz, dy, half-length along x, at most nx) of the anisotropic ball of
    radius `distance_nm` (distance_nm >= 0)."""
    vz, vy, vx = (float(v) for v in voxel_size_zyx)
    d2 = float(distance_nm) ** 2
    rows: list[tuple[int, int, int]] = []
    rz = math.floor(distance_nm / vz)
    ry = math.floor(distance_nm / vy)
    for dz in range(-rz, rz + 1):
        for dy in range(-ry, ry + 1):
            rest = (vz * dz) ** 2 + (vy * dy) ** 2
            if rest > d2:
                continue
            k = 0
            while k < nx and (vx * (k + 1)) ** 2 + rest <= d2:
                k += 1
            rows.append((dz, dy, k))
    arr = np.array(rows, np.int64).reshape(-1, 3)
    return arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].copy()


def _erode(scan: _Scan, voxel_size_zyx: tuple[float, float, float],
           distance_nm: float) -> None:
    """_MEMBER on the _CORE voxels with no other voxel within `distance_nm` (cost: the
    ball's row lengths summed, per core voxel)."""
    if distance_nm < 0:  # every core voxel is further than that from the background
        scan.flags[scan.act[(scan.flags[scan.act] & _CORE) != 0]] |= _MEMBER
        return
    dz, dy, kmax = _ball_rows(voxel_size_zyx, distance_nm, scan.shape[2])
    _erode_kernel(scan.flags, scan.act, scan.shape, dz, dy, kmax)


def erode(core: np.ndarray, voxel_size_zyx: tuple[float, float, float],
          distance_nm: float) -> np.ndarray:
    """Voxels of `core` with no background voxel within `distance_nm` (anisotropic), i.e.
    `edt(core, anisotropy=voxel_size_zyx, black_border=False) > distance_nm`."""
    core = np.ascontiguousarray(core, dtype=bool)
    if distance_nm < 0:
        return np.ones(core.shape, bool)
    act = np.flatnonzero(core)
    scan = _Scan((core.view(np.uint8) * np.uint8(_CORE)).reshape(-1), act,
                 np.zeros(len(act), np.uint8), (core.shape[0], core.shape[1], core.shape[2]))
    _erode(scan, voxel_size_zyx, distance_nm)
    return ((scan.flags & _MEMBER) != 0).reshape(core.shape)


def _components(scan: _Scan, bit: int, affs: np.ndarray, threshold: float,
                min_size: int, labels: np.ndarray, offset: int = 0) -> int:
    """Connected components of the voxels flagged `bit` along affinities > threshold,
    written into `labels` (flat) as offset + 1, ...; returns how many were kept."""
    return int(_components_kernel(scan.flags, bit, scan.act, scan.shape, *_channels(affs),
                                  np.float32(threshold), int(min_size), labels,
                                  int(offset)))


def _grow(scan: _Scan, labels: np.ndarray, affs: np.ndarray, threshold: float,
          max_iter: int) -> None:
    """`grow` on flat labels, with the edge bits of `scan` (taken at `threshold`)."""
    sent = int(np.iinfo(labels.dtype).max)
    _, ny, nx = scan.shape
    _grow_kernel(labels, scan.flags, *_channels(affs), scan.act, ny * nx, nx,
                 np.float32(threshold), int(max_iter), sent)


def grow(labels: np.ndarray, affs: np.ndarray, threshold: float, max_iter: int = 64) -> None:
    """Grow labels in place into unlabelled voxels across affinities above `threshold`.

    Each pass assigns every unlabelled voxel that touches a labelled one through a strong
    edge the label of its strongest such edge (breadth-first watershed), for at most
    `max_iter` passes. The largest value of the label dtype is reserved.
    """
    if not labels.flags.c_contiguous:
        raise ValueError("labels must be C-contiguous to grow in place")
    _check(affs)
    if labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers, got {labels.dtype}")
    affs = _f32(affs)
    _grow(_scan(affs, threshold), labels.reshape(-1), affs, threshold, max_iter)


def _region_graph(labels: np.ndarray, affs: np.ndarray, visit: np.ndarray,
                  low: np.ndarray, shape: tuple[int, int, int]) -> tuple[
        np.ndarray, np.ndarray, np.ndarray]:
    ea, eb, es, ec = _region_graph_kernel(labels, *_channels(affs), visit, low,
                                          shape[1] * shape[2], shape[2])
    order = np.lexsort((eb, ea))
    pairs = np.stack([ea[order], eb[order]], axis=1).astype(np.uint64)
    return pairs, es[order], ec[order]


def region_graph(labels: np.ndarray, affs: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                 np.ndarray]:
    """Fragment adjacency: pairs (E, 2) with a < b (sorted), summed affinity, face count."""
    _check(affs)
    lab = np.ascontiguousarray(labels).reshape(-1)
    shape = (int(affs.shape[1]), int(affs.shape[2]), int(affs.shape[3]))
    visit = np.flatnonzero(lab)
    z, y, x = np.unravel_index(visit, shape)
    low = ((z > 0) | ((y > 0) << 1) | ((x > 0) << 2)).astype(np.uint8)
    return _region_graph(lab, _f32(affs), visit, low, shape)


def _merge(pairs: np.ndarray, sums: np.ndarray, counts: np.ndarray, threshold: float,
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
    frag, rep = _merge(pairs, sums, counts, threshold, prior_faces)
    return dict(zip(frag.tolist(), rep.tolist(), strict=True))


def _lut(mapping_keys: np.ndarray, mapping_vals: np.ndarray, n: int) -> np.ndarray:
    size = max(n, int(mapping_keys.max()) + 1 if len(mapping_keys) else 0)
    lut = np.arange(size, dtype=np.int64)
    lut[mapping_keys.astype(np.int64)] = mapping_vals.astype(np.int64)
    return lut


def relabel(labels: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    """Apply a fragment -> segment mapping in place (labels not in it are kept)."""
    if mapping:
        keys = np.fromiter(mapping.keys(), np.int64, len(mapping))
        vals = np.fromiter(mapping.values(), np.int64, len(mapping))
        _apply_lut(labels.reshape(-1), _lut(keys, vals, 0).astype(labels.dtype))
    return labels


def _compact(labels: np.ndarray) -> np.ndarray:
    """Labels as a C-contiguous unsigned array whose ids index a table of sane size."""
    if labels.dtype.kind == "i" and labels.size and int(labels.min()) < 0:
        raise ValueError("labels must be non-negative")
    if labels.size and int(labels.max()) > 4 * labels.size + (1 << 20):
        labels, _ = fastremap.renumber(labels)
    return np.ascontiguousarray(labels)


def size_filter(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Zero segments smaller than `min_size` voxels and renumber 1..N in order of first
    appearance; returns uint64."""
    labels = _compact(labels)
    n = int(labels.max()) + 1 if labels.size else 1
    return _filter_renumber(labels, np.arange(n, dtype=np.int64), int(min_size))


def _segment(affs: np.ndarray, voxel_size_zyx: tuple[float, float, float], p: SegParams,
             min_size: int, timings: dict[str, float] | None = None
             ) -> tuple[np.ndarray, int]:
    """Our segmentation of float32 affinities: (uint64 labels 1..N, N).

    One pass over the affinities flags the voxels; every later stage visits only the
    flagged ones and works in place on one int64 label volume, returned as uint64.
    `timings`, when given, gets the seconds of each stage.
    """
    t = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal t
        if timings is not None:
            now = time.perf_counter()
            timings[stage] = now - t
            t = now

    scan = _scan(affs, p.grow_threshold, p.seed_threshold)
    lab = np.zeros(scan.flags.size, np.int64)
    lap("scan (edge flags, active voxels)")
    _erode(scan, voxel_size_zyx, p.seed_distance_nm)
    n_seeds = _components(scan, _MEMBER, affs, p.seed_threshold, max(p.min_seed, 1), lab)
    lap("seeds (erosion, components)")
    _grow(scan, lab, affs, p.grow_threshold, p.grow_layers)
    lap(f"grow ({p.grow_layers} layers)")
    _, ny, nx = scan.shape
    _mark_linked_free(scan.flags, scan.act, lab, ny * nx, nx)
    n_frag = n_seeds + _components(scan, _MEMBER, affs, p.grow_threshold,
                                   max(p.min_seed, 2), lab, n_seeds)
    lap("rescue")
    _grow(scan, lab, affs, p.grow_threshold, 64)
    lap("grow (rest)")
    pairs, sums, cnt = _region_graph(lab, affs, scan.act, scan.low, scan.shape)
    lap("region graph")
    frag, rep = _merge(pairs, sums, cnt, p.merge_threshold, p.prior_faces)
    lap("agglomerate")
    n = _filter_renumber_active(lab, scan.act, _lut(frag, rep, n_frag + 1), int(min_size))
    lap("relabel + size filter")
    return lab.view(np.uint64).reshape(scan.shape), n


def seeded_segmentation(affs: np.ndarray, voxel_size_zyx: tuple[float, float, float],
                        params: SegParams | None = None,
                        timings: dict[str, float] | None = None) -> np.ndarray:
    """Our segmentation: seeds, growth, mean-affinity agglomeration, size filter (uint64,
    1..N in order of first appearance). `timings`, when given, gets each stage's seconds."""
    _check(affs)
    p = params or SegParams()
    return _segment(_f32(affs), voxel_size_zyx, p, int(p.min_size), timings)[0]


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
    sizes: list[np.ndarray] = [np.zeros(1, np.int64)]  # per slab, by local id (0 unused)
    offsets = [0]
    last_plane: np.ndarray | None = None
    face_pairs, face_sums, face_counts = [], [], []
    for z0, z1 in bounds:
        affs = _f32(read_affs(z0, z1))
        if affs.shape != (3, z1 - z0, *shape_zyx[1:]):
            raise ValueError(f"read_affs({z0}, {z1}) returned shape {affs.shape}, expected "
                             f"{(3, z1 - z0, *shape_zyx[1:])}")
        local, n = _segment(affs, voxel_size_zyx, p, 1)  # 1..n, first appearance
        off = offsets[-1]
        sizes.append(np.bincount(local.reshape(-1), minlength=n + 1)[1:])
        ids = local  # in place: ids unique in the volume
        ids[ids != 0] += np.uint64(off)
        store.write(z0, ids)
        offsets.append(off + n)
        if last_plane is not None:  # contacts across the face between z0 - 1 and z0
            a, b = last_plane.reshape(-1), ids[0].reshape(-1)
            w = affs[0, 0].reshape(-1).astype(np.float64)
            both = (a != 0) & (b != 0)
            if both.any():
                key = np.stack([np.minimum(a[both], b[both]), np.maximum(a[both], b[both])])
                uk, inv = np.unique(key, axis=1, return_inverse=True)
                face_pairs.append(uk.T)
                face_sums.append(np.bincount(inv.reshape(-1), weights=w[both]))
                face_counts.append(np.bincount(inv.reshape(-1)).astype(np.int64))
        last_plane = ids[-1].copy()
    total = offsets[-1]
    size_of = np.concatenate(sizes)  # by global id, 0 first
    rep = np.arange(total + 1, dtype=np.int64)
    if face_pairs:
        frag, to = _merge(np.concatenate(face_pairs).astype(np.uint64),
                          np.concatenate(face_sums), np.concatenate(face_counts),
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
    final = new[rep] * keep[rep]
    for z0, z1 in bounds:
        store.write(z0, final[store.read(z0, z1).astype(np.int64)])
    return len(roots)


def threshold_components(affs: np.ndarray, threshold: float = 0.5,
                         min_size: int = 200) -> np.ndarray:
    """Baseline: keep affinities above `threshold`, label connected components."""
    _check(affs)
    affs = _f32(affs)
    scan = _scan(affs, threshold)  # active: the voxels with an edge above threshold
    lab = np.zeros(scan.flags.size, np.uint32)
    _components(scan, _EDGES, affs, threshold, 1, lab)
    return size_filter(lab.reshape(scan.shape), min_size)
