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

How it runs: one threaded pass over the affinities gives each voxel a flag byte (its
edges above the growth threshold, whether it is a seed core). Only flagged ("active")
voxels can ever be labelled, so every later stage works on them alone, stored compactly
in raster order with the positions of their face neighbours (see _CORE); a second pass
builds that store and, as it goes, erodes the seed cores and joins the seed voxels in a
union-find. The label volume is written once, at the end. Every loop is a compiled numba
kernel (`@njit(cache=True)`; loops without an order dependence run on numba's threads,
over blocks of sections or runs of positions; the first call in a fresh environment
compiles them, later processes load them from the cache). Connected components are a
union-find over positions whose roots are the components' first voxels, so labels come
out in order of first appearance, as cc3d's do. Nothing depends on the number of
threads: the region graph's sums are taken per block of sections (_BLOCKS), then over
the blocks in order.

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
import numba
import numpy as np
from numba import njit, prange, types
from numba.core.errors import NumbaPerformanceWarning
from numba.cpython.unsafe.numbers import trailing_zeros  # LLVM's cttz
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


# The active voxels. `_scan_kernel` gives every voxel a flag byte: bit d (d = 0..5) says
# the edge to the face neighbour in direction d (-z, +z, -y, +y, -x, +x) exists and its
# affinity is above the growth threshold; _CORE says all its in-plane affinities are
# above the seed threshold; _MEMBER marks the voxels a connected-components pass labels
# (eroded seeds, then the pieces a rescue labels). A voxel with no flag can never be
# labelled, so the later stages work on the flagged ("active") voxels only (about a
# sixth of a synthetic volume), stored compactly in raster order: position i has x
# `xs[i]`, row (z, y) holds positions rows[z * ny + y] .. rows[z * ny + y + 1], and
# `nb[k, i]` is the position of its active neighbour along -z, +z, -y, +y (k = 0..3; -1
# where that neighbour is not active); along x the neighbours of i are i - 1 and i + 1.
# `aff[c, i]` is the affinity of i's edge to its -1 neighbour along axis c. Every array
# a stage touches is then small and read in order.
_EDGES = 63
_CORE = 64
_MEMBER = 128
_BLOCKS = 16  # blocks of sections indexed, and labelled, on their own (threads over them)
_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)


@njit(cache=True, inline="always")
def _voxel_flags(a0: np.float32, a0n: np.float32, a1: np.float32, a1n: np.float32,
                 a2: np.float32, a2n: np.float32, zlo: bool, zhi: bool, ylo: bool,
                 yhi: bool, xlo: bool, xhi: bool, thr: np.float32,
                 core_thr: np.float32) -> np.uint8:  # pragma: no cover - compiled
    """A voxel's flag byte from the affinities of its edges along -z, +z, -y, +y, -x, +x
    (`zlo` ... `xhi`: whether each edge exists; a missing one counts for nothing). No
    branches, so that a row's loop vectorises."""
    one = np.float32(1.0)
    m = min(one, a1 if ylo else one)  # the weakest in-plane edge
    m = min(m, a1n if yhi else one)
    m = min(m, a2 if xlo else one)
    m = min(m, a2n if xhi else one)
    return np.uint8((zlo & (a0 > thr)) | ((zhi & (a0n > thr)) << 1)
                    | ((ylo & (a1 > thr)) << 2) | ((yhi & (a1n > thr)) << 3)
                    | ((xlo & (a2 > thr)) << 4) | ((xhi & (a2n > thr)) << 5)
                    | ((m > core_thr) << 6))


@njit(cache=True, parallel=True)
def _scan_kernel(affs: np.ndarray, thr: np.float32, core_thr: np.float32,
                 flags: np.ndarray, counts: np.ndarray,
                 core: np.ndarray) -> None:  # pragma: no cover - compiled
    """Edge bits and _CORE of every voxel; counts[z * ny + y] = flagged voxels of row;
    `core`: the _CORE bits as `_core_bits` gives them. The first and last voxels of a
    row are done apart, so that the loop over the others has no bounds to test."""
    nz, ny, nx = flags.shape
    for z in prange(nz):
        zlo = z > 0
        zhi = z < nz - 1
        for y in range(ny):
            ylo = y > 0
            yhi = y < ny - 1
            a0 = affs[0, z, y]
            a0n = affs[0, min(z + 1, nz - 1), y]  # read only where zhi
            a1 = affs[1, z, y]
            a1n = affs[1, z, min(y + 1, ny - 1)]  # read only where yhi
            a2 = affs[2, z, y]
            row = flags[z, y]
            e = nx - 1
            row[0] = _voxel_flags(a0[0], a0n[0], a1[0], a1n[0], a2[0], a2[min(1, e)], zlo,
                                  zhi, ylo, yhi, False, e > 0, thr, core_thr)
            for x in range(1, e):
                row[x] = _voxel_flags(a0[x], a0n[x], a1[x], a1n[x], a2[x], a2[x + 1], zlo,
                                      zhi, ylo, yhi, True, True, thr, core_thr)
            if e > 0:
                row[e] = _voxel_flags(a0[e], a0n[e], a1[e], a1n[e], a2[e], a2[e], zlo, zhi,
                                      ylo, yhi, True, False, thr, core_thr)
            n = 0
            for x in range(nx):
                n += row[x] != 0
            counts[z * ny + y] = n
            for w in range(core.shape[2]):
                left = nx - w * 64
                bits = _ONES << np.uint64(left) if left < 64 else np.uint64(0)
                for t in range(min(left, 64)):
                    bits |= np.uint64(row[w * 64 + t] >> 6) << np.uint64(t)
                core[z, y, w] = bits


@njit(cache=True, inline="always")
def _find(parent: np.ndarray, i: int) -> int:  # pragma: no cover - compiled
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@njit(cache=True, inline="always")
def _join(parent: np.ndarray, a: int, b: int) -> None:  # pragma: no cover - compiled
    """Union of the sets of a and b; the smaller root wins, so parent[i] <= i always."""
    ra = _find(parent, a)
    rb = _find(parent, b)
    if ra < rb:
        parent[rb] = ra
    elif rb < ra:
        parent[ra] = rb


@njit(cache=True, inline="always")
def _next_member(fc: np.ndarray, words: np.ndarray, i: int, end: int, bit: int,
                 mask: np.uint64) -> int:  # pragma: no cover - compiled
    """The first position from i on (before end) with a flag of `bit` (end if none);
    `words` (fc as uint64) and `mask` (bit in every byte, or 0 where members are too
    many for it to pay) skip eight at a time."""
    while i < end:
        if mask != 0 and i & 7 == 0 and i + 8 <= end and words[i >> 3] & mask == 0:
            i += 8
            continue
        if fc[i] & bit != 0:
            return i
        i += 1
    return end


def _words(fc: np.ndarray, bit: int, sparse: bool) -> tuple[np.ndarray, np.uint64]:
    """fc as uint64 words (whole ones), and `bit` in every byte if members are `sparse`
    (see _next_member)."""
    return (fc[:len(fc) // 8 * 8].view(np.uint64),
            np.uint64(bit * 0x0101010101010101 if sparse else 0))


@njit(cache=True, inline="always")
def _shifted(m: np.ndarray, w: int, s: int) -> np.uint64:  # pragma: no cover - compiled
    """Word w of the bits m shifted by s (> 0: bit x gets bit x + s; < 0: bit x - |s|),
    ones shifted in."""
    nw = len(m)
    q = abs(s) >> 6
    r = np.uint64(abs(s) & 63)
    if s > 0:
        lo = m[w + q] if w + q < nw else _ONES
        if r == 0:
            return lo
        hi = m[w + q + 1] if w + q + 1 < nw else _ONES
        return (lo >> r) | (hi << (np.uint64(64) - r))
    hi = m[w - q] if w - q >= 0 else _ONES
    if r == 0:
        return hi
    lo = m[w - q - 1] if w - q - 1 >= 0 else _ONES
    return (hi << r) | (lo >> (np.uint64(64) - r))


@njit(cache=True, inline="always")
def _eroded_row(core: np.ndarray, z: int, y: int, dz: np.ndarray, dy: np.ndarray,
                kmax: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """out: the bits of row (z, y) with no non-core voxel in any row (z + dz, y + dy)
    within kmax along x (rows and voxels outside the volume are ignored); `core`: the
    _CORE bits (see `_core_bits`)."""
    nz, ny, _ = core.shape
    for w in range(len(out)):
        out[w] = _ONES
    for j in range(len(dz)):
        zz = z + dz[j]
        yy = y + dy[j]
        if zz < 0 or zz >= nz or yy < 0 or yy >= ny:
            continue
        m = core[zz, yy]
        for w in range(len(out)):
            e = m[w]
            for s in range(1, kmax[j] + 1):
                e &= _shifted(m, w, s) & _shifted(m, w, -s)
            out[w] &= e


@njit(cache=True, inline="always")
def _next_flagged(flat: np.ndarray, words: np.ndarray, b0: int, x: int,
                  nx: int) -> int:  # pragma: no cover - compiled
    """The first x' >= x with a flag in the row starting at flat index b0 (nx if none);
    `words` (the flags as uint64; byte j of a word is its bits 8j .. 8j + 7, as on every
    little-endian machine) finds it a word at a time, by counting trailing zero bits."""
    while x < nx:
        t = b0 + x
        if t >> 3 < len(words):
            w = words[t >> 3] >> np.uint64((t & 7) * 8)  # the bytes from t on
            if w != 0:
                return min(x + (trailing_zeros(w) >> 3), nx)  # type: ignore[call-arg]
            x += 8 - (t & 7)
        elif flat[t] != 0:
            return x
        else:
            x += 1
    return nx


@njit(cache=True, inline="always")
def _positions(flat: np.ndarray, words: np.ndarray, rows: np.ndarray, ny: int, nx: int,
               z: int, pos: np.ndarray) -> None:  # pragma: no cover - compiled
    """pos[y * nx + x]: the position of the flagged voxels (z, y, x) (others untouched)."""
    for y in range(ny):
        r = z * ny + y
        x = 0
        for k in range(rows[r], rows[r + 1]):
            x = _next_flagged(flat, words, r * nx, x, nx)
            pos[y * nx + x] = k
            x += 1


@njit(cache=True, parallel=True)
def _index_kernel(flat: np.ndarray, words: np.ndarray, shape: tuple[int, int, int],
                  rows: np.ndarray, starts: np.ndarray, xs: np.ndarray,
                  fc: np.ndarray, affs: np.ndarray, aff: np.ndarray, nb: np.ndarray,
                  link: bool, core: np.ndarray, dz: np.ndarray, dy: np.ndarray,
                  kmax: np.ndarray, erode: bool, parent: np.ndarray,
                  seed_thr: np.float32) -> None:  # pragma: no cover - compiled
    """The flagged voxels in raster order: x and flags; with `link`, their affinities to
    their -1 neighbours and their neighbours' positions (nb); with `erode`, _MEMBER on
    the _CORE voxels `_eroded_row` keeps, and with both, their union-find in `parent` along
    affinities above seed_thr inside each block (as `_components_in_blocks`). `flat`:
    the flags (shape `shape`), flat; `words`: the same as uint64 (unflagged runs are
    skipped a word at a time).

    Threads over blocks of sections starts[b] .. starts[b + 1]; each walks its sections
    in order with position maps of the section before and of its own (by the parity of
    z; read only where the flags say a voxel is there), so a voxel looks up its -z and
    -y neighbours and writes itself in as their +z and +y neighbour. The sections next
    to a block are mapped from their flags, so a block writes its own positions only.
    """
    nz, ny, nx = shape
    plane = ny * nx
    nw = (nx + 63) // 64
    for b in prange(len(starts) - 1):
        z0 = starts[b]
        z1 = starts[b + 1]
        pos = np.empty((2, plane if link else 0), np.int32)
        if link and z0 > 0:
            _positions(flat, words, rows, ny, nx, z0 - 1, pos[(z0 - 1) & 1])
        kept = np.empty(nw, np.uint64)
        for z in range(z0, z1):
            c = z & 1
            for y in range(ny):
                r = z * ny + y
                b0 = r * nx
                x = 0
                if erode and rows[r + 1] > rows[r]:
                    _eroded_row(core, z, y, dz, dy, kmax, kept)
                for k in range(rows[r], rows[r + 1]):
                    x = _next_flagged(flat, words, b0, x, nx)
                    f = flat[b0 + x]
                    member = erode and f & _CORE != 0 and \
                        (kept[x >> 6] >> np.uint64(x & 63)) & np.uint64(1) != 0
                    if member:
                        f |= _MEMBER
                    xs[k] = x
                    fc[k] = f
                    if link:
                        aff[0, k] = affs[0, z, y, x]
                        aff[1, k] = affs[1, z, y, x]
                        aff[2, k] = affs[2, z, y, x]
                        t = y * nx + x
                        pos[c, t] = k
                        nb[1, k] = -1
                        nb[3, k] = -1
                        j = -1
                        if z > 0 and flat[b0 + x - plane] != 0:
                            j = pos[1 - c, t]
                            nb[1, j] = k
                        nb[0, k] = j
                        j = -1
                        if y > 0 and flat[b0 + x - nx] != 0:
                            j = pos[c, t - nx]
                            nb[3, j] = k
                        nb[2, k] = j
                        if member:
                            _link(fc, nb, aff, parent, k, f, z > z0, _MEMBER, seed_thr)
                    x += 1
        if link and z1 < nz:  # the block's last section: its +z links into the next block
            c = z1 & 1
            _positions(flat, words, rows, ny, nx, z1, pos[c])
            for y in range(ny):
                r = (z1 - 1) * ny + y
                for k in range(rows[r], rows[r + 1]):
                    t = y * nx + xs[k]
                    if flat[z1 * plane + t] != 0:
                        nb[1, k] = pos[c, t]


@njit(cache=True, inline="always")
def _link(fc: np.ndarray, nb: np.ndarray, aff: np.ndarray, parent: np.ndarray, i: int,
          f: int, along_z: bool, bit: int,
          thr: np.float32) -> None:  # pragma: no cover - compiled
    """Member i (flags f) into the union-find, joined to its -x, -y and (`along_z`) -z
    neighbours that are members (flagged `bit`) across an affinity above thr."""
    parent[i] = i
    if f & 16 != 0 and fc[i - 1] & bit != 0 and aff[2, i] > thr:
        _join(parent, i, i - 1)
    if f & 4 != 0:
        j = nb[2, i]
        if fc[j] & bit != 0 and aff[1, i] > thr:
            _join(parent, i, j)
    if f & 1 != 0 and along_z:
        j = nb[0, i]
        if fc[j] & bit != 0 and aff[0, i] > thr:
            _join(parent, i, j)


@njit(cache=True, parallel=True)
def _flat_kernel(rows: np.ndarray, xs: np.ndarray, ny: int, nx: int,
                 out: np.ndarray) -> None:  # pragma: no cover - compiled
    """Flat voxel index of every position."""
    for r in prange(len(rows) - 1):
        for i in range(rows[r], rows[r + 1]):
            out[i] = r * nx + xs[i]


@njit(cache=True, parallel=True)
def _components_in_blocks(rows: np.ndarray, fc: np.ndarray, words: np.ndarray,
                          mask: np.uint64, nb: np.ndarray, aff: np.ndarray, bit: int,
                          thr: np.float32, starts: np.ndarray, ny: int,
                          parent: np.ndarray) -> None:  # pragma: no cover
    """Union-find over positions of the links inside each block of sections
    starts[b] .. starts[b + 1] (threads over blocks: a block's links never leave its
    positions)."""
    for b in prange(len(starts) - 1):
        inner = rows[(starts[b] + 1) * ny]  # positions from here link to the block along z
        end = rows[starts[b + 1] * ny]
        i = rows[starts[b] * ny]
        while True:
            i = _next_member(fc, words, i, end, bit, mask)
            if i >= end:
                break
            _link(fc, nb, aff, parent, i, fc[i], i >= inner, bit, thr)
            i += 1


@njit(cache=True, parallel=True)  # sequential: see _SEQUENTIAL_NOTE
def _components_across_blocks(rows: np.ndarray, fc: np.ndarray, nb: np.ndarray,
                              aff: np.ndarray, bit: int, thr: np.float32,
                              starts: np.ndarray, ny: int,
                              parent: np.ndarray) -> None:  # pragma: no cover
    """The links along z from each block's first section to the block before."""
    for b in range(1, len(starts) - 1):
        for i in range(rows[starts[b] * ny], rows[(starts[b] + 1) * ny]):
            f = fc[i]
            if f & bit != 0 and f & 1 != 0:
                j = nb[0, i]
                if fc[j] & bit != 0 and aff[0, i] > thr:
                    _join(parent, i, j)


@njit(cache=True, parallel=True)
def _root_labels(fc: np.ndarray, words: np.ndarray, mask: np.uint64, bit: int,
                 parent: np.ndarray, bounds: np.ndarray, lab: np.ndarray,
                 roots: np.ndarray, listed: np.ndarray) -> None:  # pragma: no cover
    """lab[i]: the root of member i (parent[i] <= i; a root is its own parent); block b
    (positions bounds[b] .. bounds[b + 1]) lists its roots[b] roots, in order, from
    listed[bounds[b]] on (threads over blocks: a member whose parent lies in its block
    takes the root found for the parent; others walk up the tree, which no one
    writes)."""
    for b in prange(len(bounds) - 1):
        p0 = bounds[b]
        end = bounds[b + 1]
        n = 0
        i = p0
        while True:
            i = _next_member(fc, words, i, end, bit, mask)
            if i >= end:
                break
            p = parent[i]
            if p == i:
                r = i
                listed[p0 + n] = i
                n += 1
            elif p >= p0:
                r = lab[p]
            else:
                r = p
                while parent[r] != r:
                    r = parent[r]
            lab[i] = r
            i += 1
        roots[b] = n


@njit(cache=True)
def _index_roots(bounds: np.ndarray, roots: np.ndarray, listed: np.ndarray,
                 parent: np.ndarray) -> int:  # pragma: no cover - compiled
    """parent[root] = the root's index among all roots in position order (its
    component's index); returns how many there are."""
    k = 0
    for b in range(len(roots)):
        for t in range(bounds[b], bounds[b] + roots[b]):
            parent[listed[t]] = k
            k += 1
    return k


@njit(cache=True, parallel=True)
def _component_sizes(fc: np.ndarray, words: np.ndarray, mask: np.uint64, bit: int,
                     parent: np.ndarray, lab: np.ndarray,
                     sizes: np.ndarray) -> None:  # pragma: no cover - compiled
    """sizes[t, c]: members of component c (parent[root]) in the t-th of len(sizes)
    runs of positions (threads over runs)."""
    n = len(fc)
    parts = sizes.shape[0]
    for t in prange(parts):
        end = n * (t + 1) // parts
        i = n * t // parts
        root = -1  # members come in runs of one component: count a run, then add it
        run = 0
        while True:
            i = _next_member(fc, words, i, end, bit, mask)
            if i >= end:
                break
            if lab[i] != root:
                if run:
                    sizes[t, parent[root]] += run
                root = lab[i]
                run = 0
            run += 1
            i += 1
        if run:
            sizes[t, parent[root]] += run


@njit(cache=True, parallel=True)
def _assign_components(fc: np.ndarray, words: np.ndarray, mask: np.uint64, bit: int,
                       parent: np.ndarray, ids: np.ndarray, bounds: np.ndarray,
                       lab: np.ndarray) -> None:  # pragma: no cover - compiled
    """lab[i] = the id of member i's component (ids[parent[root]]) (threads over the
    blocks of positions bounds[b] .. bounds[b + 1])."""
    for b in prange(len(bounds) - 1):
        end = bounds[b + 1]
        i = bounds[b]
        root = -1
        v = 0
        while True:
            i = _next_member(fc, words, i, end, bit, mask)
            if i >= end:
                break
            if lab[i] != root:
                root = lab[i]
                v = ids[parent[root]]
            lab[i] = v
            i += 1


@njit(cache=True, parallel=True)
def _mark_linked_free(lab: np.ndarray, fc: np.ndarray,
                      nb: np.ndarray) -> None:  # pragma: no cover - compiled
    """_MEMBER on exactly the unlabelled positions with a strong edge to an unlabelled
    neighbour (the only ones that can be in a component of two voxels or more)."""
    for i in prange(len(fc)):
        f = fc[i] & (_EDGES | _CORE)
        if lab[i] == 0 and ((f & 1 != 0 and lab[nb[0, i]] == 0)
                            or (f & 2 != 0 and lab[nb[1, i]] == 0)
                            or (f & 4 != 0 and lab[nb[2, i]] == 0)
                            or (f & 8 != 0 and lab[nb[3, i]] == 0)
                            or (f & 16 != 0 and lab[i - 1] == 0)
                            or (f & 32 != 0 and lab[i + 1] == 0)):
            f |= _MEMBER
        fc[i] = f


@njit(cache=True, inline="always")
def _stronger(best: int, ba: np.float32, strong: bool, n: int,
              a: np.float32) -> tuple[int, np.float32]:  # pragma: no cover - compiled
    """(label, affinity) after offering label n across an edge of affinity a: taken if
    the edge is strong, n a label and a above the best so far (selects, no branches)."""
    t = strong & (n > 0) & (a > ba)
    return (n if t else best), (a if t else ba)


@njit(cache=True, inline="always")
def _best(lab: np.ndarray, fc: np.ndarray, nb: np.ndarray, aff: np.ndarray, i: int,
          thr: np.float32) -> int:  # pragma: no cover - compiled
    """Label of the strongest edge above thr to a labelled neighbour (0 if none; the
    mark -1 is not a label).

    Order -z, +z, -y, +y, -x, +x; a later edge wins only if strictly stronger. Without
    branches on the data (which way a voxel's edges go is unpredictable): every
    neighbour is read (a missing one, -1, wraps to the last position) and the flags
    decide what counts.
    """
    f = fc[i]
    j1 = nb[1, i]
    j3 = nb[3, i]
    k = min(i + 1, len(lab) - 1)
    best, ba = _stronger(0, thr, f & 1 != 0, lab[nb[0, i]], aff[0, i])
    best, ba = _stronger(best, ba, f & 2 != 0, lab[j1], aff[0, j1])
    best, ba = _stronger(best, ba, f & 4 != 0, lab[nb[2, i]], aff[1, i])
    best, ba = _stronger(best, ba, f & 8 != 0, lab[j3], aff[1, j3])
    best, ba = _stronger(best, ba, f & 16 != 0, lab[i - 1], aff[2, i])
    return _stronger(best, ba, f & 32 != 0, lab[k], aff[2, k])[0]


@njit(cache=True, parallel=True)
def _assign_layer(lab: np.ndarray, fc: np.ndarray, nb: np.ndarray, aff: np.ndarray,
                  cand: np.ndarray, nc: int, thr: np.float32,
                  fl: np.ndarray) -> None:  # pragma: no cover - compiled
    for k in prange(nc):
        fl[k] = _best(lab, fc, nb, aff, cand[k], thr)


@njit(cache=True, parallel=True)
def _free_layer(lab: np.ndarray, fc: np.ndarray, nb: np.ndarray, aff: np.ndarray,
                thr: np.float32, free: np.ndarray, nfree: int,
                buf: np.ndarray) -> int:  # pragma: no cover - compiled
    """The labels of one growth layer (threaded): buf[k] gets the `_best` label of the
    unlabelled position free[k] (0 if none). Returns the count."""
    n = 0
    for k in prange(nfree):
        b = _best(lab, fc, nb, aff, free[k], thr)
        if b != 0:
            n += 1
        buf[k] = b
    return n


@njit(cache=True, parallel=True)
def _write_at(lab: np.ndarray, idx: np.ndarray, vals: np.ndarray,
              n: int) -> None:  # pragma: no cover - compiled
    """lab[idx[k]] = vals[k] where vals[k] != 0, k < n. A kernel of its own: numba fuses
    consecutive parallel loops, and a layer's labels must all be chosen before any is
    written."""
    for k in prange(n):
        if vals[k] != 0:
            lab[idx[k]] = vals[k]


@njit(cache=True, parallel=True)  # sequential: see _SEQUENTIAL_NOTE
def _split_free(free: np.ndarray, buf: np.ndarray, nfree: int,
                done: np.ndarray) -> tuple[int, int]:  # pragma: no cover - compiled
    """Keep in `free` (in order) the positions a layer left unlabelled; the others go
    to `done`. Returns both counts. Without branches on the data: every position is
    written to both, and only the count of the one it belongs to moves on."""
    nk = 0
    nd = 0
    for k in range(nfree):
        v = free[k]
        kept = buf[k] == 0
        free[nk] = v
        done[nd] = v
        nk += kept
        nd += not kept
    return nk, nd


@njit(cache=True, parallel=True)
def _free_positions(lab: np.ndarray, free: np.ndarray) -> int:  # pragma: no cover
    """free[:n] = the unlabelled positions, in order; returns n.

    If one position in 64 says they are few, one pass with a branch that is seldom
    taken; otherwise threads over _BLOCKS runs of positions, each counting its own,
    then writing them, without branches on the data, from where the runs before it end.
    """
    n = len(lab)
    seen = 0
    for i in range(0, n, 64):
        seen += lab[i] == 0
    if 8 * 64 * seen < n:
        k = 0
        for i in range(n):
            if lab[i] == 0:
                free[k] = i
                k += 1
        return k
    ends = np.zeros(_BLOCKS + 1, np.int64)
    for b in prange(_BLOCKS):
        c = 0
        for i in range(n * b // _BLOCKS, n * (b + 1) // _BLOCKS):
            c += lab[i] == 0
        ends[b + 1] = c
    for b in range(_BLOCKS):
        ends[b + 1] += ends[b]
    for b in prange(_BLOCKS):
        k = ends[b]
        for i in range(n * b // _BLOCKS, n * (b + 1) // _BLOCKS):
            if k == ends[b + 1]:  # the next write would land in the next run's room
                break
            free[k] = i
            k += lab[i] == 0
    return ends[_BLOCKS]


@njit(cache=True, parallel=True)  # sequential: see _SEQUENTIAL_NOTE
def _next_layer(lab: np.ndarray, fc: np.ndarray, nb: np.ndarray, front: np.ndarray,
                nf: int, cand: np.ndarray) -> int:  # pragma: no cover - compiled
    """Unlabelled neighbours across strong edges of the positions just labelled, each
    once (marked -1)."""
    nc = 0
    for k in range(nf):
        u = front[k]
        f = fc[u]
        for d in range(6):
            if f & (1 << d) != 0:
                w = nb[d, u] if d < 4 else (u - 1 if d == 4 else u + 1)
                if lab[w] == 0:
                    lab[w] = -1
                    cand[nc] = w
                    nc += 1
    return nc


@njit(cache=True, parallel=True)  # sequential: see _SEQUENTIAL_NOTE
def _grow_kernel(lab: np.ndarray, fc: np.ndarray, nb: np.ndarray, aff: np.ndarray,
                 thr: np.float32, max_iter: int, free: np.ndarray, cand: np.ndarray,
                 buf: np.ndarray) -> int:  # pragma: no cover - compiled
    """Synchronous breadth-first growth; returns the number of layers grown.

    Each layer gives every unlabelled position with a strong edge to one labelled before
    the layer the label of its strongest such edge. While layers are big (over 1/16 of
    the positions) a layer is a threaded pass over the positions still unlabelled
    (`_free_layer`); then the growth follows the frontier: a layer's candidates are
    marked -1, given their label (`_best` ignores marks), then written, and the next
    layer's candidates come from the positions just labelled. Both ways give the same
    labels. The loops live in helpers that reassign no array (numba would otherwise
    count references inside them). `free`, `cand` (nb's dtype) and `buf` (lab's) are
    scratch of len(lab) positions.
    """
    if max_iter <= 0:
        return 0
    nfree = _free_positions(lab, free)
    if nfree == 0:
        return 0
    big = len(lab) // 16
    layers = 0
    nc = 0
    while layers < max_iter:
        nc = _free_layer(lab, fc, nb, aff, thr, free, nfree, buf)
        _write_at(lab, free, buf, nfree)
        if nc == 0:
            return layers
        layers += 1
        nfree, nc = _split_free(free, buf, nfree, cand)
        if nc <= big:
            break
    if layers >= max_iter:
        return layers
    front = free  # the positions still free are not needed any more
    nc = _next_layer(lab, fc, nb, cand, nc, front)
    while nc > 0:
        _assign_layer(lab, fc, nb, aff, front, nc, thr, buf)
        _write_at(lab, front, buf, nc)
        layers += 1
        if layers >= max_iter:
            break
        nc = _next_layer(lab, fc, nb, front, nc, cand)
        cand, front = front, cand
    return layers


@njit(cache=True, inline="always")
def _slot(a: int, b: int, mask: int) -> int:  # pragma: no cover - compiled
    h = (a * np.int64(-7046029254386353131)) ^ (b * np.int64(-4417276706812531889))
    return int((h >> 17) & mask)


@njit(cache=True)
def _rehash(ea: np.ndarray, eb: np.ndarray, e0: int, ne: int,
            cap: int) -> np.ndarray:  # pragma: no cover - compiled
    """A table of `cap` slots holding the edges e0 .. ne (edge index + 1; 0 = empty)."""
    table = np.zeros(cap, np.int64)
    for k in range(e0, ne):
        t = _slot(ea[k], eb[k], cap - 1)
        while table[t] != 0:
            t = (t + 1) & (cap - 1)
        table[t] = k + 1
    return table


_RG_CHUNK = 1 << 10  # positions visited between checks of the contact table's room
_RG_ROOM = 16  # positions per edge a block of the region graph is first given room for


@njit(cache=True)
def _block_contacts(lab: np.ndarray, nb: np.ndarray, aff: np.ndarray, rows: np.ndarray,
                    xs: np.ndarray, r0: int, r1: int, ea: np.ndarray, eb: np.ndarray,
                    es: np.ndarray, ec: np.ndarray, e0: int, e1: int,
                    row_max: int) -> int:  # pragma: no cover - compiled
    """Distinct (a < b) contacts of the positions of rows r0..r1 with float64 sums
    accumulated in raster order (per voxel: its -z, -y, -x faces), written at e0..e1;
    returns the end of what was written, or -1 if they might not fit (a row holds at
    most row_max positions).

    Open-addressing hash on (a, b), grown (only between chunks of positions, so the
    inner loops never reassign an array) to keep room for a chunk's worth of contacts.
    """
    cap = 1 << 12
    table = np.zeros(cap, np.int64)
    ne = e0
    last = np.full(6, -1, np.int64)  # per axis, the last contact's a, b (its edge: eix)
    eix = np.full(3, -1, np.int64)
    r = r0
    while r < r1:
        if ne + 3 * (_RG_CHUNK + row_max) > e1:
            return -1
        if 2 * (ne - e0 + 3 * _RG_CHUNK) > cap:
            while 2 * (ne - e0 + 3 * _RG_CHUNK) > cap:
                cap *= 2
            table = _rehash(ea, eb, e0, ne, cap)
        r, ne = _region_graph_chunk(lab, nb, aff, rows, xs, r, r1, table, ea, eb, es, ec,
                                    ne, last, eix)
    return ne


@njit(cache=True, parallel=True)
def _region_graph_kernel(lab: np.ndarray, nb: np.ndarray, aff: np.ndarray,
                         rows: np.ndarray, xs: np.ndarray, bounds: np.ndarray,
                         e0: np.ndarray, ea: np.ndarray, eb: np.ndarray, es: np.ndarray,
                         ec: np.ndarray, e1: np.ndarray,
                         row_max: int) -> None:  # pragma: no cover - compiled
    """`_block_contacts` of the rows bounds[b] .. bounds[b + 1], written at
    e0[b] .. e0[b + 1], to e1[b] (threads over blocks)."""
    for b in prange(len(bounds) - 1):
        e1[b] = _block_contacts(lab, nb, aff, rows, xs, bounds[b], bounds[b + 1], ea, eb,
                                es, ec, e0[b], e0[b + 1], row_max)


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
                es[e] = 0.0
                ec[e] = 0
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


@njit(cache=True)
def _region_graph_chunk(lab: np.ndarray, nb: np.ndarray, aff: np.ndarray,
                        rows: np.ndarray, xs: np.ndarray, r: int, r1: int,
                        table: np.ndarray, ea: np.ndarray, eb: np.ndarray, es: np.ndarray,
                        ec: np.ndarray, ne: int, last: np.ndarray,
                        eix: np.ndarray) -> tuple[int, int]:  # pragma: no cover - compiled
    """Contacts of whole rows from r on (before r1) into the hash, until at least
    _RG_CHUNK positions are visited (the caller leaves room for a chunk and a row);
    returns the next row and the end of the edges."""
    i_end = rows[r] + _RG_CHUNK
    while r < r1 and rows[r] < i_end:
        first = rows[r]
        for i in range(first, rows[r + 1]):
            p = int(lab[i])
            # most positions touch their own label only: test all three faces without
            # branches on the data (a missing neighbour, -1, reads the last position)
            h = max(i - 1, 0)
            q0 = int(lab[nb[0, i]])
            q2 = int(lab[nb[2, i]])
            qx = int(lab[h])
            d0 = (nb[0, i] >= 0) & (q0 > 0) & (q0 != p)
            d2 = (nb[2, i] >= 0) & (q2 > 0) & (q2 != p)
            dx = (i > first) & (xs[h] == xs[i] - 1) & (qx > 0) & (qx != p)
            if p <= 0 or not (d0 | d2 | dx):
                continue
            if d0:
                ne = _contact(p, q0, aff[0, i], 0, table, ea, eb, es, ec, ne, last, eix)
            if d2:
                ne = _contact(p, q2, aff[1, i], 1, table, ea, eb, es, ec, ne, last, eix)
            if dx:
                ne = _contact(p, qx, aff[2, i], 2, table, ea, eb, es, ec, ne, last, eix)
        r += 1
    return r, ne


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


@njit(cache=True, parallel=True)
def _final_ids(lab: np.ndarray, lut: np.ndarray, min_size: int,
               parts: int) -> np.ndarray:  # pragma: no cover - compiled
    """`_new_ids` of the segments lut[lab] (positions in raster order, labels >= 0).

    Threads over `parts` runs of positions, each counting its segments and noting where
    each first appears; the runs are then combined in order, and the segments sorted by
    their first position (the result does not depend on `parts`).
    """
    n = len(lab)
    m = len(lut)
    counts = np.zeros((parts, m), np.int64)
    first = np.empty((parts, m), np.int64)
    for b in prange(parts):
        for i in range(n * b // parts, n * (b + 1) // parts):
            s = lut[lab[i]]
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
    return _new_ids(order, int(np.count_nonzero(total)), total, min_size)


@njit(cache=True, parallel=True)
def _write_segments(lab: np.ndarray, lut: np.ndarray, new: np.ndarray, rows: np.ndarray,
                    xs: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    """Every voxel of `out`: new[lut[lab[i]]] at position i, 0 elsewhere (threads over
    sections; `out` need not be zeroed)."""
    nz, ny, nx = out.shape
    for z in prange(nz):
        for y in range(ny):
            r = z * ny + y
            row = out[z, y]
            for x in range(nx):
                row[x] = 0
            for k in range(rows[r], rows[r + 1]):
                row[xs[k]] = new[lut[lab[k]]]


# ---------------------------------------------------------------------------------------
# public stages


@dataclass(frozen=True)
class _Active:
    """The active voxels of a volume (see _CORE): compact, in raster order."""

    shape: tuple[int, int, int]
    rows: np.ndarray  # (nz * ny + 1,) int64: row (z, y) holds positions rows[r]..rows[r+1]
    xs: np.ndarray  # (n,) int32
    fc: np.ndarray  # (n,) uint8: the flags, then _MEMBER as stages set it
    nb: np.ndarray  # (n, 4) int32: positions along -z, +z, -y, +y, or -1
    aff: np.ndarray  # (n, 3) float32: affinity to the -1 neighbour along z, y, x
    work: np.ndarray  # (3, n) int32 scratch for the stages; see _active


_NO_AFFS = np.zeros((3, 1, 1, 1), np.float32)
_NO_ROWS = np.zeros(0, np.int64)


@dataclass(frozen=True)
class _Ball:
    """An anisotropic ball as rows (dz, dy, half-length along x)."""

    dz: np.ndarray
    dy: np.ndarray
    kmax: np.ndarray

    @classmethod
    def of(cls, voxel_size_zyx: tuple[float, float, float], distance_nm: float,
           nx: int) -> _Ball:
        """The ball of radius `distance_nm` (no rows when it is negative), its rows at
        most nx long."""
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
        return cls(arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].copy())


def _section_blocks(nz: int) -> np.ndarray:
    """Bounds of _BLOCKS blocks of sections (fewer when there are fewer sections)."""
    return np.unique(np.linspace(0, nz, _BLOCKS + 1).astype(np.int64))


def _carve(pool: np.ndarray | None, used: int, shape: tuple[int, int],
           dtype: type) -> tuple[np.ndarray, int]:
    """An empty array from pool[used:] if it fits there (fresh otherwise), and the bytes
    of the pool used after it."""
    size = shape[0] * shape[1] * np.dtype(dtype).itemsize
    if pool is None or used + size > len(pool):
        return np.empty(shape, dtype), used
    return pool[used:used + size].view(dtype).reshape(shape), used + size


def _core_bits(flags: np.ndarray) -> np.ndarray:
    """The _CORE bits of flags (nz, ny, nx) as (nz, ny, ceil(nx / 64)) uint64 words: bit
    x & 63 of word x >> 6, and the bits past nx set (outside the volume counts as core
    when eroding)."""
    nz, ny, nx = flags.shape
    nw = -(-nx // 64)
    packed = np.zeros((nz, ny, nw * 8), np.uint8)
    packed[:, :, :-(-nx // 8)] = np.packbits(flags & _CORE != 0, axis=2, bitorder="little")
    core = packed.view(np.uint64)
    if nx % 64:
        core[:, :, -1] |= _ONES << np.uint64(nx % 64)
    return core


def _active(flags: np.ndarray, counts: np.ndarray, core: np.ndarray,
            affs: np.ndarray | None, ball: _Ball | None = None,
            seed_threshold: float = math.inf, pool: np.ndarray | None = None) -> _Active:
    """Index the voxels with a flag (`counts`: how many per row); link them and gather
    their affinities when `affs` (float32, contiguous) is given; with a `ball`, set
    _MEMBER on the _CORE voxels (`core`: their bits, see `_core_bits`) with no non-core
    voxel within it (cost per row: the ball's rows' lengths summed, times the row's
    words). With both, work[0] holds the union-find of those seed voxels along
    affinities above `seed_threshold` inside each block of sections (see _components,
    `linked`). nb, aff and work are taken from `pool` (bytes, 4-byte
    aligned; the label volume's own memory, which no stage needs before the end) as far
    as they fit: fresh memory costs the kernel a page fault and zeroing per page."""
    nz, ny, nx = (int(s) for s in flags.shape)
    rows = np.zeros(nz * ny + 1, np.int64)
    np.cumsum(counts, out=rows[1:])
    n = int(rows[-1])
    if n >= 2**30:  # int32 positions, and a root plus its component's size
        raise ValueError(f"{n} active voxels: too many for one block, segment in slabs "
                         "(--block-sections)")
    xs = np.empty(n, np.int32)
    fc = np.empty(n, np.uint8)
    m = n if affs is not None else 0
    nb, used = _carve(pool, 0, (4, m), np.int32)
    aff, used = _carve(pool, used, (3, m), np.float32)
    work, used = _carve(pool, used, (3, m), np.int32)
    b = ball or _Ball(_NO_ROWS, _NO_ROWS, _NO_ROWS)
    flat = flags.reshape(-1)
    words = flat[:len(flat) // 8 * 8].view(np.uint64)
    _index_kernel(flat, words, (nz, ny, nx), rows, _section_blocks(nz), xs, fc,
                  affs if affs is not None else _NO_AFFS, aff, nb, affs is not None,
                  core, b.dz, b.dy, b.kmax, ball is not None, work[0],
                  np.float32(seed_threshold))
    return _Active((nz, ny, nx), rows, xs, fc, nb, aff, work)


def _scan(affs: np.ndarray, threshold: float, core_threshold: float = math.inf,
          ball: _Ball | None = None, pool: np.ndarray | None = None) -> _Active:
    """Active voxels of float32 affinities: edge bits at `threshold`, _CORE at
    `core_threshold`, _MEMBER on the core voxels a `ball` leaves, linked at
    `core_threshold` (see _active)."""
    nz, ny, nx = (int(s) for s in affs.shape[1:])
    flags = np.empty((nz, ny, nx), np.uint8)
    counts = np.empty(nz * ny, np.int64)
    core = np.empty((nz, ny, -(-nx // 64)), np.uint64)
    _scan_kernel(affs, np.float32(threshold), np.float32(core_threshold), flags, counts,
                 core)
    return _active(flags, counts, core, affs, ball, core_threshold, pool)


def _of_mask(mask: np.ndarray, affs: np.ndarray | None,
             ball: _Ball | None = None) -> _Active:
    """The voxels of a boolean mask as active voxels (no edge bits; _CORE set)."""
    flags = np.ascontiguousarray(mask, dtype=bool).view(np.uint8) * np.uint8(_CORE)
    counts = np.count_nonzero(flags, axis=2).reshape(-1).astype(np.int64)
    return _active(flags, counts, _core_bits(flags), affs, ball)


def _flat(act: _Active) -> np.ndarray:
    """Flat voxel index of every position."""
    out = np.empty(len(act.xs), np.int64)
    _flat_kernel(act.rows, act.xs, act.shape[1], act.shape[2], out)
    return out


def erode(core: np.ndarray, voxel_size_zyx: tuple[float, float, float],
          distance_nm: float) -> np.ndarray:
    """Voxels of `core` with no background voxel within `distance_nm` (anisotropic), i.e.
    `edt(core, anisotropy=voxel_size_zyx, black_border=False) > distance_nm`."""
    if distance_nm < 0:
        return np.ones(core.shape, bool)
    act = _of_mask(core, None, _Ball.of(voxel_size_zyx, distance_nm, core.shape[2]))
    out = np.zeros(core.shape, bool)
    out.reshape(-1)[_flat(act)[(act.fc & _MEMBER) != 0]] = True
    return out


def _components(act: _Active, bit: int, threshold: float, min_size: int,
                lab: np.ndarray, scratch: np.ndarray, offset: int = 0,
                sparse: bool = False, linked: bool = False) -> int:
    """Connected components of the positions flagged `bit` (any of its bits) along
    affinities > threshold (at least the edge bits' threshold), written into `lab`
    (positions) as offset + 1, ... in order of first appearance, 0 for those under
    `min_size` voxels; returns how many were kept. `scratch`: (2, positions) int32;
    `sparse`: few positions are members (they are then looked for eight at a time);
    `linked`: scratch[0] already holds the union-find inside blocks (see _active).

    A union-find whose roots are the components' first positions (threads over blocks
    of sections, then the links across blocks); the numbering runs on threads too.
    """
    nz, ny, _ = act.shape
    thr = np.float32(threshold)
    parent, listed = scratch[0], scratch[1]
    starts = _section_blocks(nz)
    words, mask = _words(act.fc, bit, sparse)
    if not linked:
        _components_in_blocks(act.rows, act.fc, words, mask, act.nb, act.aff, bit, thr,
                              starts, ny, parent)
    _components_across_blocks(act.rows, act.fc, act.nb, act.aff, bit, thr, starts, ny,
                              parent)
    bounds = act.rows[starts * ny]
    roots = np.empty(len(starts) - 1, np.int64)
    _root_labels(act.fc, words, mask, bit, parent, bounds, lab, roots, listed)
    n_comp = _index_roots(bounds, roots, listed, parent)
    sizes = np.zeros((max(1, min(numba.get_num_threads(), 8)), n_comp), np.int64)
    _component_sizes(act.fc, words, mask, bit, parent, lab, sizes)
    keep = sizes.sum(axis=0) >= min_size
    ids = np.where(keep, offset + np.cumsum(keep), 0).astype(lab.dtype)
    _assign_components(act.fc, words, mask, bit, parent, ids, bounds, lab)
    return int(keep.sum())


def grow(labels: np.ndarray, affs: np.ndarray, threshold: float, max_iter: int = 64) -> None:
    """Grow labels in place into unlabelled voxels across affinities above `threshold`.

    Each pass assigns every unlabelled voxel that touches a labelled one through a strong
    edge the label of its strongest such edge (breadth-first watershed), for at most
    `max_iter` passes. Labels must be integers below 2**63.
    """
    if not labels.flags.c_contiguous:
        raise ValueError("labels must be C-contiguous to grow in place")
    _check(affs)
    if labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers, got {labels.dtype}")
    affs = _f32(affs)
    act = _scan(affs, threshold)
    at = _flat(act)
    flat = labels.reshape(-1)
    lab = flat[at].astype(np.int64)
    w = act.work
    _grow_kernel(lab, act.fc, act.nb, act.aff, np.float32(threshold), int(max_iter),
                 w[0], w[1], np.empty_like(lab))
    flat[at] = lab.astype(labels.dtype)


def region_graph(labels: np.ndarray, affs: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                 np.ndarray]:
    """Fragment adjacency: pairs (E, 2) with a < b (sorted), summed affinity, face count."""
    _check(affs)
    labels = np.ascontiguousarray(labels)
    act = _of_mask(labels != 0, _f32(affs))
    return _region_graph(act, labels.reshape(-1)[_flat(act)].astype(np.int64))


def _region_graph(act: _Active, lab: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                          np.ndarray]:
    """`region_graph` of the labels `lab` of the active voxels.

    Threads over blocks of sections, each with a hash of its own; sums are accumulated
    per block in raster order, then over the blocks in order, so they do not depend on
    the number of threads. A block's edges first get room for one per _RG_ROOM
    positions; if that might not be enough, all are counted again with four times the
    room (up to three per position: a block has no more edges than faces).
    """
    nz, ny, _ = act.shape
    bounds = _section_blocks(nz) * ny
    size = np.diff(act.rows[bounds])
    row_max = int(np.diff(act.rows).max(initial=0))
    per = _RG_ROOM
    while True:
        room = (np.minimum(size // per, 3 * size) if per else 3 * size) \
            + 3 * (_RG_CHUNK + row_max)
        e0 = np.zeros(len(size) + 1, np.int64)
        np.cumsum(room, out=e0[1:])
        total = int(e0[-1])
        ea = np.empty(total, np.int64)
        eb = np.empty(total, np.int64)
        es = np.empty(total, np.float64)
        ec = np.empty(total, np.int64)
        e1 = np.empty(len(size), np.int64)
        _region_graph_kernel(lab, act.nb, act.aff, act.rows, act.xs, bounds, e0, ea, eb,
                             es, ec, e1, row_max)
        if (e1 >= 0).all():
            break
        per = max(per // 4, 1) if per > 1 else 0
    keep = np.concatenate([np.arange(e0[b], e1[b]) for b in range(len(size))]
                          + [np.zeros(0, np.int64)])
    pairs, inv = np.unique(np.stack([ea[keep], eb[keep]], axis=1), axis=0,
                           return_inverse=True)
    inv = inv.reshape(-1)
    sums = np.bincount(inv, weights=es[keep], minlength=len(pairs))
    counts = np.bincount(inv, weights=ec[keep], minlength=len(pairs)).astype(np.int64)
    return pairs.astype(np.uint64).reshape(-1, 2), sums, counts


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

    One pass over the affinities flags the voxels; every later stage works on the
    compact active voxels (see _CORE) and writes the volume once at the end. `timings`,
    when given, gets the seconds of each stage.
    """
    t = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal t
        if timings is not None:
            now = time.perf_counter()
            timings[stage] = now - t
            t = now

    out = np.empty(affs.shape[1:], np.uint64)  # the stages' arrays live in it until the end
    pool = out.reshape(-1).view(np.uint8)
    act = _scan(affs, p.grow_threshold, p.seed_threshold,
                _Ball.of(voxel_size_zyx, p.seed_distance_nm, affs.shape[3]), pool)
    n = len(act.fc)
    lab = np.zeros(n, np.int32)  # fewer than 2**31 positions
    scratch = act.work  # shared by the stages (union-find parents, growth queues)
    lap("scan (edge flags, active voxels, their links, seed erosion)")
    n_seeds = _components(act, _MEMBER, p.seed_threshold, max(p.min_seed, 1), lab,
                          scratch[:2], linked=True)
    lap("seeds (components)")
    thr = np.float32(p.grow_threshold)
    _grow_kernel(lab, act.fc, act.nb, act.aff, thr, int(p.grow_layers), *scratch)
    lap(f"grow ({p.grow_layers} layers)")
    _mark_linked_free(lab, act.fc, act.nb)
    n_frag = n_seeds + _components(act, _MEMBER, p.grow_threshold, max(p.min_seed, 2),
                                   lab, scratch[:2], n_seeds, sparse=True)
    lap("rescue")
    _grow_kernel(lab, act.fc, act.nb, act.aff, thr, 64, *scratch)
    lap("grow (rest)")
    pairs, sums, cnt = _region_graph(act, lab)
    lap("region graph")
    frag, rep = _merge(pairs, sums, cnt, p.merge_threshold, p.prior_faces)
    lap("agglomerate")
    lut = _lut(frag, rep, n_frag + 1)
    new = _final_ids(lab, lut, int(min_size), max(2, numba.get_num_threads()))
    _write_segments(lab, lut, new, act.rows, act.xs, out)
    lap("size filter, labels written")
    return out, int(new.max()) if len(new) else 0


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
    act = _scan(affs, threshold)  # active: the voxels with an edge above threshold
    lab = np.zeros(len(act.fc), np.int64)
    _components(act, _EDGES, threshold, 1, lab, act.work[:2])
    out = np.zeros(act.shape, np.uint32)
    out.reshape(-1)[_flat(act)] = lab
    return size_filter(out, min_size)
