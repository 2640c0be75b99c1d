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
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import fastremap
import numpy as np
from numba import njit, prange, types
from numba.core.errors import NumbaPerformanceWarning
from numba.typed import Dict, List

from reconstruct.lattice import neighbour_slices


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


@njit(cache=True, parallel=True)
def _interior_kernel(affs: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    nz, ny, nx = affs.shape[1], affs.shape[2], affs.shape[3]
    s = np.empty((nz, ny, nx), np.float32)
    for z in prange(nz):
        for y in range(ny):
            for x in range(nx):
                m = np.float32(1.0)
                if y > 0 and affs[1, z, y, x] < m:
                    m = affs[1, z, y, x]
                if y < ny - 1 and affs[1, z, y + 1, x] < m:
                    m = affs[1, z, y + 1, x]
                if x > 0 and affs[2, z, y, x] < m:
                    m = affs[2, z, y, x]
                if x < nx - 1 and affs[2, z, y, x + 1] < m:
                    m = affs[2, z, y, x + 1]
                s[z, y, x] = m
    return s


@njit(cache=True, parallel=True)
def _erode_kernel(core: np.ndarray, dz: np.ndarray, dy: np.ndarray, kmax: np.ndarray,
                  xd: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """Keep v iff no background voxel lies in row (z+dz, y+dy) within kmax (<= nx) along
    x; `xd` (scratch, holds nx + 1) gets the distance along x to the row's background."""
    nz, ny, nx = core.shape
    big = nx + 1
    for z in prange(nz):
        for y in range(ny):
            d = big
            for x in range(nx):
                d = 0 if not core[z, y, x] else min(d + 1, big)
                xd[z, y, x] = d
            d = big
            for x in range(nx - 1, -1, -1):
                d = 0 if not core[z, y, x] else min(d + 1, big)
                if d < xd[z, y, x]:
                    xd[z, y, x] = d
    out = np.zeros((nz, ny, nx), np.bool_)
    for z in prange(nz):
        for y in range(ny):
            for x in range(nx):
                keep = True
                for i in range(len(dz)):
                    zz = z + dz[i]
                    yy = y + dy[i]
                    if zz < 0 or zz >= nz or yy < 0 or yy >= ny:
                        continue
                    if xd[zz, yy, x] <= kmax[i]:
                        keep = False
                        break
                out[z, y, x] = keep
    return out


@njit(cache=True, inline="always")
def _find(parent: np.ndarray, v: int) -> int:  # pragma: no cover - compiled
    while parent[v] != v:
        parent[v] = parent[parent[v]]
        v = parent[v]
    return v


@njit(cache=True, parallel=True)  # sequential: see _SEQUENTIAL_NOTE
def _components_kernel(mask: np.ndarray, affs: np.ndarray, thr: np.float32,
                       min_size: int, out: np.ndarray, offset: int,
                       parent: np.ndarray) -> int:  # pragma: no cover - compiled
    """Label `mask` voxels linked by affinities > thr (both ends in mask) into `out`.

    Components numbered in order of first appearance (raster order); those under
    `min_size` voxels get 0, the others consecutive ids from offset + 1. Voxels outside
    `mask` are left untouched. Returns the number of components kept.
    """
    nz, ny, nx = mask.shape
    sy = nx
    sz = ny * nx
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                if not mask[z, y, x]:
                    continue
                v = z * sz + y * sy + x
                root = v  # v's root once linked to the components before it
                if x > 0 and mask[z, y, x - 1] and affs[2, z, y, x] > thr:
                    root = _find(parent, v - 1)
                if y > 0 and mask[z, y - 1, x] and affs[1, z, y, x] > thr:
                    ru = _find(parent, v - sy)
                    if root == v:
                        root = ru
                    elif ru != root:
                        parent[max(ru, root)] = min(ru, root)
                        root = min(ru, root)
                if z > 0 and mask[z - 1, y, x] and affs[0, z, y, x] > thr:
                    ru = _find(parent, v - sz)
                    if root == v:
                        root = ru
                    elif ru != root:
                        parent[max(ru, root)] = min(ru, root)
                        root = min(ru, root)
                parent[v] = root
    oflat = out.reshape(-1)
    n_roots = 0
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                if mask[z, y, x] and parent[z * sz + y * sy + x] == z * sz + y * sy + x:
                    n_roots += 1
    # provisional ids in order of first appearance (a root precedes its members), kept
    # in `out` until the final ids are known
    sizes = np.zeros(n_roots + 1, np.int64)
    n = 0
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                if not mask[z, y, x]:
                    continue
                v = z * sz + y * sy + x
                r = _find(parent, v)
                if r == v:
                    n += 1
                    k = n
                else:
                    k = int(oflat[r])
                out[z, y, x] = k
                sizes[k] += 1
    lut = np.zeros(n + 1, np.int64)
    kept = 0
    for i in range(1, n + 1):
        if sizes[i] >= min_size:
            kept += 1
            lut[i] = offset + kept
    _apply_ids(mask, out, lut)
    return kept


@njit(cache=True, parallel=True)
def _linked_free(lab: np.ndarray, affs: np.ndarray,
                 thr: np.float32) -> np.ndarray:  # pragma: no cover - compiled
    """Unlabelled voxels with an edge above thr to an unlabelled face neighbour."""
    nz, ny, nx = lab.shape
    out = np.zeros((nz, ny, nx), np.bool_)
    for z in prange(nz):
        for y in range(ny):
            for x in range(nx):
                if lab[z, y, x] != 0:
                    continue
                out[z, y, x] = (
                    (z > 0 and lab[z - 1, y, x] == 0 and affs[0, z, y, x] > thr)
                    or (z < nz - 1 and lab[z + 1, y, x] == 0 and affs[0, z + 1, y, x] > thr)
                    or (y > 0 and lab[z, y - 1, x] == 0 and affs[1, z, y, x] > thr)
                    or (y < ny - 1 and lab[z, y + 1, x] == 0 and affs[1, z, y + 1, x] > thr)
                    or (x > 0 and lab[z, y, x - 1] == 0 and affs[2, z, y, x] > thr)
                    or (x < nx - 1 and lab[z, y, x + 1] == 0 and affs[2, z, y, x + 1] > thr))
    return out


@njit(cache=True, parallel=True)
def _apply_ids(mask: np.ndarray, out: np.ndarray,
               lut: np.ndarray) -> None:  # pragma: no cover - compiled
    """out = lut[out] on the voxels of `mask` (threads over sections)."""
    nz, ny, nx = mask.shape
    for z in prange(nz):
        for y in range(ny):
            for x in range(nx):
                if mask[z, y, x]:
                    out[z, y, x] = lut[np.int64(out[z, y, x])]


@njit(cache=True, inline="always")
def _best(lab: np.ndarray, affs: np.ndarray, z: int, y: int, x: int, thr: np.float32,
          sent: int) -> int:  # pragma: no cover - compiled
    """Label of the strongest edge above thr to a labelled neighbour (0 if none).

    Order -z, +z, -y, +y, -x, +x; a later edge wins only if strictly stronger.
    """
    nz, ny, nx = lab.shape
    best = 0
    ba = thr
    if z > 0:
        n = lab[z - 1, y, x]
        if n != 0 and n != sent and affs[0, z, y, x] > ba:
            best = n
            ba = affs[0, z, y, x]
    if z < nz - 1:
        n = lab[z + 1, y, x]
        if n != 0 and n != sent and affs[0, z + 1, y, x] > ba:
            best = n
            ba = affs[0, z + 1, y, x]
    if y > 0:
        n = lab[z, y - 1, x]
        if n != 0 and n != sent and affs[1, z, y, x] > ba:
            best = n
            ba = affs[1, z, y, x]
    if y < ny - 1:
        n = lab[z, y + 1, x]
        if n != 0 and n != sent and affs[1, z, y + 1, x] > ba:
            best = n
            ba = affs[1, z, y + 1, x]
    if x > 0:
        n = lab[z, y, x - 1]
        if n != 0 and n != sent and affs[2, z, y, x] > ba:
            best = n
            ba = affs[2, z, y, x]
    if x < nx - 1:
        n = lab[z, y, x + 1]
        if n != 0 and n != sent and affs[2, z, y, x + 1] > ba:
            best = n
            ba = affs[2, z, y, x + 1]
    return best


@njit(cache=True, inline="always")
def _push(lab: np.ndarray, z: int, y: int, x: int, sent: int, cz: np.ndarray,
          cy: np.ndarray, cx: np.ndarray, nc: int) -> int:  # pragma: no cover - compiled
    lab[z, y, x] = sent
    cz[nc] = z
    cy[nc] = y
    cx[nc] = x
    return nc + 1


@njit(cache=True, inline="always")
def _mark(lab: np.ndarray, affs: np.ndarray, z: int, y: int, x: int, thr: np.float32,
          sent: int, cz: np.ndarray, cy: np.ndarray, cx: np.ndarray,
          nc: int) -> int:  # pragma: no cover - compiled
    """Append the unlabelled neighbours of (z, y, x) across strong edges, marked `sent`."""
    nz, ny, nx = lab.shape
    if z > 0 and lab[z - 1, y, x] == 0 and affs[0, z, y, x] > thr:
        nc = _push(lab, z - 1, y, x, sent, cz, cy, cx, nc)
    if z < nz - 1 and lab[z + 1, y, x] == 0 and affs[0, z + 1, y, x] > thr:
        nc = _push(lab, z + 1, y, x, sent, cz, cy, cx, nc)
    if y > 0 and lab[z, y - 1, x] == 0 and affs[1, z, y, x] > thr:
        nc = _push(lab, z, y - 1, x, sent, cz, cy, cx, nc)
    if y < ny - 1 and lab[z, y + 1, x] == 0 and affs[1, z, y + 1, x] > thr:
        nc = _push(lab, z, y + 1, x, sent, cz, cy, cx, nc)
    if x > 0 and lab[z, y, x - 1] == 0 and affs[2, z, y, x] > thr:
        nc = _push(lab, z, y, x - 1, sent, cz, cy, cx, nc)
    if x < nx - 1 and lab[z, y, x + 1] == 0 and affs[2, z, y, x + 1] > thr:
        nc = _push(lab, z, y, x + 1, sent, cz, cy, cx, nc)
    return nc


@njit(cache=True, parallel=True)
def _full_layer(lab: np.ndarray, affs: np.ndarray, thr: np.float32, sent: int,
                buf: np.ndarray) -> int:  # pragma: no cover - compiled
    """One growth layer as a full pass (threads over sections): buf gets each unlabelled
    voxel's `_best` label (0 elsewhere), then labels are written. Returns the count."""
    nz, ny, nx = lab.shape
    n = 0
    for z in prange(nz):
        for y in range(ny):
            for x in range(nx):
                b = 0
                if lab[z, y, x] == 0:
                    b = _best(lab, affs, z, y, x, thr, sent)
                    if b != 0:
                        n += 1
                buf[z, y, x] = b
    for z in prange(nz):
        for y in range(ny):
            for x in range(nx):
                if buf[z, y, x] != 0:
                    lab[z, y, x] = buf[z, y, x]
    return n


@njit(cache=True, parallel=True)  # sequential: see _SEQUENTIAL_NOTE
def _collect(buf: np.ndarray, fz: np.ndarray, fy: np.ndarray,
             fx: np.ndarray) -> int:  # pragma: no cover - compiled
    """Coordinates of the non-zero voxels of buf, in raster order."""
    nz, ny, nx = buf.shape
    n = 0
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                if buf[z, y, x] != 0:
                    fz[n] = z
                    fy[n] = y
                    fx[n] = x
                    n += 1
    return n


@njit(cache=True, parallel=True)
def _assign_layer(lab: np.ndarray, affs: np.ndarray, thr: np.float32, sent: int,
                  cz: np.ndarray, cy: np.ndarray, cx: np.ndarray, nc: int,
                  fl: np.ndarray) -> None:  # pragma: no cover - compiled
    for i in prange(nc):
        fl[i] = _best(lab, affs, cz[i], cy[i], cx[i], thr, sent)
    for i in prange(nc):
        lab[cz[i], cy[i], cx[i]] = fl[i]


@njit(cache=True, parallel=True)  # sequential: see _SEQUENTIAL_NOTE
def _next_layer(lab: np.ndarray, affs: np.ndarray, thr: np.float32, sent: int,
                fz: np.ndarray, fy: np.ndarray, fx: np.ndarray, nf: int, cz: np.ndarray,
                cy: np.ndarray, cx: np.ndarray) -> int:  # pragma: no cover - compiled
    nc = 0
    for i in range(nf):
        nc = _mark(lab, affs, fz[i], fy[i], fx[i], thr, sent, cz, cy, cx, nc)
    return nc


@njit(cache=True, parallel=True)
def _count_free(lab: np.ndarray) -> int:  # pragma: no cover - compiled
    nz, ny, nx = lab.shape
    n = 0
    for z in prange(nz):
        for y in range(ny):
            for x in range(nx):
                if lab[z, y, x] == 0:
                    n += 1
    return n


@njit(cache=True, parallel=True)  # sequential: see _SEQUENTIAL_NOTE
def _grow_kernel(lab: np.ndarray, affs: np.ndarray, thr: np.float32, max_iter: int,
                 sent: int) -> int:  # pragma: no cover - compiled
    """Synchronous breadth-first growth; returns the number of layers grown.

    Each layer gives every unlabelled voxel with a strong edge to a voxel labelled before
    the layer the label of its strongest such edge. While layers are big (over 1/64 of
    the volume) a layer is a threaded full pass (`_full_layer`); then the growth follows
    the frontier: a layer's candidates are marked `sent`, given their label (`_best`
    ignores marks), then written, and the next layer's candidates come from the voxels
    just labelled. Both ways give the same labels. Coordinates are kept, not flat
    indices; the voxel loops live in helpers that reassign no array (numba would
    otherwise count references inside them).
    """
    n_free = _count_free(lab)
    if max_iter <= 0 or n_free == 0:
        return 0
    buf = np.empty_like(lab)
    big = lab.size // 64
    layers = 0
    nc = 0
    while layers < max_iter:
        nc = _full_layer(lab, affs, thr, sent, buf)
        if nc == 0:
            return layers
        layers += 1
        if nc <= big:
            break
    if layers >= max_iter:
        return layers
    cz = np.empty(n_free, np.int32)
    cy = np.empty(n_free, np.int32)
    cx = np.empty(n_free, np.int32)
    fz = np.empty(n_free, np.int32)
    fy = np.empty(n_free, np.int32)
    fx = np.empty(n_free, np.int32)
    fl = np.empty(n_free, lab.dtype)
    nf = _collect(buf, fz, fy, fx)
    nc = _next_layer(lab, affs, thr, sent, fz, fy, fx, nf, cz, cy, cx)
    while nc > 0:
        _assign_layer(lab, affs, thr, sent, cz, cy, cx, nc, fl)
        layers += 1
        if layers >= max_iter:
            break
        nc = _next_layer(lab, affs, thr, sent, cz, cy, cx, nc, fz, fy, fx)
        cz, fz = fz, cz
        cy, fy = fy, cy
        cx, fx = fx, cx
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


@njit(cache=True)
def _region_graph_kernel(lab: np.ndarray, affs: np.ndarray) -> tuple[
        np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Distinct (a < b) contacts with float64 sums accumulated in (channel, raster) order.

    Open-addressing hash on (a, b), grown (only between z planes, so the inner loops
    never reassign an array) to keep room for a whole plane of new contacts.
    """
    nz, ny, nx = lab.shape
    room = 3 * ny * nx
    cap = 1 << 12
    while cap < 4 * room:
        cap *= 2
    table = np.zeros(cap, np.int64)
    ea = np.empty(cap // 2, np.int64)
    eb = np.empty(cap // 2, np.int64)
    es = np.zeros(cap // 2, np.float64)
    ec = np.zeros(cap // 2, np.int64)
    ne = 0
    for c in range(3):
        z0 = 1 if c == 0 else 0
        y0 = 1 if c == 1 else 0
        x0 = 1 if c == 2 else 0
        for z in range(z0, nz):
            if 2 * (ne + room) > cap:
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
            ne = _region_graph_plane(lab, affs, c, z, z0, y0, x0, table, ea, eb, es, ec, ne)
    return ea[:ne], eb[:ne], es[:ne], ec[:ne]


@njit(cache=True, parallel=True)  # sequential: see _SEQUENTIAL_NOTE
def _region_graph_plane(lab: np.ndarray, affs: np.ndarray, c: int, z: int, z0: int,
                        y0: int, x0: int, table: np.ndarray, ea: np.ndarray,
                        eb: np.ndarray, es: np.ndarray, ec: np.ndarray,
                        ne: int) -> int:  # pragma: no cover - compiled
    """Contacts of plane z along axis c into the hash (which has room for them)."""
    ny, nx = lab.shape[1], lab.shape[2]
    mask = len(table) - 1
    last_a = -1
    last_b = -1
    last_e = -1
    for y in range(y0, ny):
        for x in range(x0, nx):
            p = int(lab[z, y, x])
            q = int(lab[z - z0, y - y0, x - x0])
            if p == q or p == 0 or q == 0:
                continue
            a = min(p, q)
            b = max(p, q)
            if a != last_a or b != last_b:
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
                last_a = a
                last_b = b
                last_e = e
            es[last_e] += np.float64(affs[c, z, y, x])
            ec[last_e] += 1
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
    new = np.zeros(len(lut), np.uint64)
    nxt = np.uint64(0)
    for k in range(n_seen):
        s = order[k]
        if s != 0 and counts[s] >= min_size:
            nxt += np.uint64(1)
            new[s] = nxt
    out = np.empty(flat.size, np.uint64)
    _renumber(flat, lut, new, out)
    return out.reshape(labels.shape)


@njit(cache=True, parallel=True)
def _renumber(flat: np.ndarray, lut: np.ndarray, new: np.ndarray,
              out: np.ndarray) -> None:  # pragma: no cover - compiled
    for i in prange(flat.size):
        out[i] = new[lut[flat[i]]]


# ---------------------------------------------------------------------------------------
# public stages


def interior(affs: np.ndarray) -> np.ndarray:
    """Minimum of the four in-plane affinities of each voxel (volume edges ignored)."""
    _check(affs)
    return _interior_kernel(_f32(affs))


def erode(core: np.ndarray, voxel_size_zyx: tuple[float, float, float],
          distance_nm: float) -> np.ndarray:
    """Voxels of `core` with no background voxel within `distance_nm` (anisotropic), i.e.
    `edt(core, anisotropy=voxel_size_zyx, black_border=False) > distance_nm`."""
    vz, vy, vx = (float(v) for v in voxel_size_zyx)
    d2 = float(distance_nm) ** 2
    rows: list[tuple[int, int, int]] = []
    rz = math.floor(distance_nm / vz) if distance_nm >= 0 else -1
    ry = math.floor(distance_nm / vy) if distance_nm >= 0 else -1
    for dz in range(-rz, rz + 1):
        for dy in range(-ry, ry + 1):
            rest = (vz * dz) ** 2 + (vy * dy) ** 2
            if rest > d2:
                continue
            k = 0
            while k < core.shape[2] and (vx * (k + 1)) ** 2 + rest <= d2:
                k += 1
            rows.append((dz, dy, k))
    arr = np.array(rows, np.int64).reshape(-1, 3)
    xd = np.empty(core.shape, np.int16 if core.shape[2] < 32766 else np.int32)
    return _erode_kernel(np.ascontiguousarray(core, dtype=bool), arr[:, 0].copy(),
                         arr[:, 1].copy(), arr[:, 2].copy(), xd)


def _components(mask: np.ndarray, affs: np.ndarray, threshold: float, min_size: int,
                out: np.ndarray, offset: int = 0) -> int:
    """Connected components of `mask` along affinities > threshold, written into `out`."""
    n = mask.size
    parent = np.empty(n, np.int32 if n < 2**31 - 1 else np.int64)
    return int(_components_kernel(np.ascontiguousarray(mask, dtype=bool), affs,
                                  np.float32(threshold), int(min_size), out, int(offset),
                                  parent))


def make_seeds(affs: np.ndarray, voxel_size_zyx: tuple[float, float, float],
               p: SegParams) -> np.ndarray:
    """Seed fragments (uint32): eroded interiors, labelled along strong affinities."""
    _check(affs)
    affs = _f32(affs)
    mask = erode(interior(affs) > np.float32(p.seed_threshold), voxel_size_zyx,
                 p.seed_distance_nm)
    lab = np.zeros(mask.shape, np.uint32)
    _components(mask, affs, p.seed_threshold, max(int(p.min_seed), 1), lab)
    return lab


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
    sent = int(np.iinfo(labels.dtype).max)
    _grow_kernel(labels, _f32(affs), np.float32(threshold), int(max_iter), sent)


def rescue(labels: np.ndarray, affs: np.ndarray, threshold: float, min_voxels: int) -> None:
    """Label, in place, strongly linked pieces that no seed reached (thin processes).

    Labels must be a C-contiguous integer array of at least 32 bits."""
    _check(affs)
    if not labels.flags.c_contiguous or labels.dtype.kind not in "iu" \
            or labels.dtype.itemsize < 4:
        raise ValueError("labels must be C-contiguous integers of >= 32 bits")
    affs = _f32(affs)
    # only unlabelled voxels with a strong edge to another one can be in a component of
    # two voxels or more: the union-find skips the rest (most of a sparse volume)
    linked = _linked_free(labels, affs, np.float32(threshold))
    if not linked.any():
        return
    _components(linked, affs, threshold, max(int(min_voxels), 2), labels,
                int(labels.max()))


def region_graph(labels: np.ndarray, affs: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                 np.ndarray]:
    """Fragment adjacency: pairs (E, 2) with a < b (sorted), summed affinity, face count."""
    _check(affs)
    lab = np.ascontiguousarray(labels)
    ea, eb, es, ec = _region_graph_kernel(lab, _f32(affs))
    order = np.lexsort((eb, ea))
    pairs = np.stack([ea[order], eb[order]], axis=1).astype(np.uint64)
    return pairs, es[order], ec[order]


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


def _agglomerated(affs: np.ndarray, voxel_size_zyx: tuple[float, float, float],
                  p: SegParams) -> tuple[np.ndarray, np.ndarray]:
    """Fragments (uint32) and the fragment -> segment table after agglomeration."""
    lab = make_seeds(affs, voxel_size_zyx, p)
    grow(lab, affs, p.grow_threshold, p.grow_layers)
    rescue(lab, affs, p.grow_threshold, p.min_seed)
    grow(lab, affs, p.grow_threshold)
    pairs, sums, cnt = region_graph(lab, affs)
    frag, rep = _merge(pairs, sums, cnt, p.merge_threshold, p.prior_faces)
    return lab, _lut(frag, rep, int(lab.max()) + 1)


def seeded_segmentation(affs: np.ndarray, voxel_size_zyx: tuple[float, float, float],
                        params: SegParams | None = None) -> np.ndarray:
    """Our segmentation: seeds, growth, mean-affinity agglomeration, size filter."""
    _check(affs)
    p = params or SegParams()
    lab, lut = _agglomerated(_f32(affs), voxel_size_zyx, p)
    return _filter_renumber(lab, lut, int(p.min_size))


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
        lab, lut = _agglomerated(affs, voxel_size_zyx, p)
        local = _filter_renumber(lab, lut, 1)  # 1..n in order of first appearance
        n = int(local.max()) if local.size else 0
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
    t = np.float32(threshold)
    mask = np.zeros(affs.shape[1:], bool)
    for c in range(3):
        st = affs[c] > t
        mask |= st
        lo, hi = neighbour_slices(c)
        mask[lo] |= st[hi]
    lab = np.zeros(mask.shape, np.uint32)
    _components(mask, affs, threshold, 1, lab)
    return size_filter(lab, min_size)
