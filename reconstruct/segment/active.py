"""Active voxels: one pass flags every voxel, a second indexes the flagged ones.

`scan` gives each voxel its flag byte (edges above the growth threshold, seed core; see `layout`),
then `index` stores the flagged voxels compactly in raster order with their face neighbours'
positions and their affinities, eroding the seed cores and joining the seed voxels in a union-find
as it goes. Numba, threaded over blocks of sections: this is the only pass over the whole volume,
and with the erosion in it, it takes a quarter of the time `edt` alone needs (256^3).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange
from numba.cpython.unsafe.numbers import trailing_zeros  # LLVM's cttz

from connectome_query.reconstruct.segment.components import link
from connectome_query.reconstruct.segment.erosion import Ball, core_bits, eroded_row
from connectome_query.reconstruct.segment.layout import (
    ALL_ONES,
    CORE,
    MEMBER,
    ActiveVoxels,
    section_blocks,
)

_NO_AFFINITIES = np.zeros((3, 1, 1, 1), np.float32)


@njit(cache=True, inline="always")
def _voxel_flags(az_prev: np.float32, az_next: np.float32, ay_prev: np.float32,
                 ay_next: np.float32, ax_prev: np.float32, ax_next: np.float32,
                 z_prev: bool, z_next: bool, y_prev: bool, y_next: bool, x_prev: bool,
                 x_next: bool, threshold: np.float32,
                 core_threshold: np.float32) -> np.uint8:  # pragma: no cover - compiled
    """A voxel's flag byte from the affinities of its edges along -z, +z, -y, +y, -x, +x
    (`z_prev` ... `x_next`: whether each edge exists; a missing one counts for nothing).
    No branches, so that a row's loop vectorises."""
    one = np.float32(1.0)
    m = min(one, ay_prev if y_prev else one)  # the weakest in-plane edge
    m = min(m, ay_next if y_next else one)
    m = min(m, ax_prev if x_prev else one)
    m = min(m, ax_next if x_next else one)
    return np.uint8((z_prev & (az_prev > threshold)) | ((z_next & (az_next > threshold)) << 1)
                    | ((y_prev & (ay_prev > threshold)) << 2)
                    | ((y_next & (ay_next > threshold)) << 3)
                    | ((x_prev & (ax_prev > threshold)) << 4)
                    | ((x_next & (ax_next > threshold)) << 5)
                    | ((m > core_threshold) << 6))


@njit(cache=True, parallel=True)
def _scan_kernel(affs: np.ndarray, threshold: np.float32, core_threshold: np.float32,
                 flags: np.ndarray, counts: np.ndarray,
                 core: np.ndarray) -> None:  # pragma: no cover - compiled
    """Edge bits and CORE of every voxel; counts[z * ny + y] = flagged voxels of row;
    `core`: the CORE bits as `core_bits` gives them. The first and last voxels of a
    row are done apart, so that the loop over the others has no bounds to test."""
    nz, ny, nx = flags.shape
    for z in prange(nz):
        z_prev = z > 0
        z_next = z < nz - 1
        for y in range(ny):
            y_prev = y > 0
            y_next = y < ny - 1
            az = affs[0, z, y]
            az_next = affs[0, min(z + 1, nz - 1), y]  # read only where z_next
            ay = affs[1, z, y]
            ay_next = affs[1, z, min(y + 1, ny - 1)]  # read only where y_next
            ax = affs[2, z, y]
            row = flags[z, y]
            e = nx - 1
            row[0] = _voxel_flags(az[0], az_next[0], ay[0], ay_next[0], ax[0], ax[min(1, e)],
                                  z_prev, z_next, y_prev, y_next, False, e > 0, threshold,
                                  core_threshold)
            for x in range(1, e):
                row[x] = _voxel_flags(az[x], az_next[x], ay[x], ay_next[x], ax[x], ax[x + 1],
                                      z_prev, z_next, y_prev, y_next, True, True, threshold,
                                      core_threshold)
            if e > 0:
                row[e] = _voxel_flags(az[e], az_next[e], ay[e], ay_next[e], ax[e], ax[e],
                                      z_prev, z_next, y_prev, y_next, True, False, threshold,
                                      core_threshold)
            n = 0
            for x in range(nx):
                n += row[x] != 0
            counts[z * ny + y] = n
            for w in range(core.shape[2]):
                left = nx - w * 64
                bits = ALL_ONES << np.uint64(left) if left < 64 else np.uint64(0)
                for t in range(min(left, 64)):
                    bits |= np.uint64(row[w * 64 + t] >> 6) << np.uint64(t)
                core[z, y, w] = bits


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


@njit(cache=True, inline="always")
def _link_into_next_block(flat: np.ndarray, words: np.ndarray, rows: np.ndarray,
                          xs: np.ndarray, neighbours: np.ndarray, z1: int, ny: int, nx: int,
                          pos: np.ndarray) -> None:  # pragma: no cover - compiled
    """The +z neighbours of a block's last section z1 - 1, in the next block's first
    section z1 (mapped here from its flags into `pos`)."""
    plane = ny * nx
    _positions(flat, words, rows, ny, nx, z1, pos)
    for y in range(ny):
        r = (z1 - 1) * ny + y
        for k in range(rows[r], rows[r + 1]):
            t = y * nx + xs[k]
            if flat[z1 * plane + t] != 0:
                neighbours[1, k] = pos[t]


@njit(cache=True, parallel=True)
def _index_kernel(flat: np.ndarray, words: np.ndarray, shape: tuple[int, int, int],
                  rows: np.ndarray, starts: np.ndarray, xs: np.ndarray, flags: np.ndarray,
                  affs: np.ndarray, affinity: np.ndarray, neighbours: np.ndarray,
                  with_links: bool, core: np.ndarray, ball_dz: np.ndarray,
                  ball_dy: np.ndarray, ball_half_length: np.ndarray, erode: bool,
                  parent: np.ndarray, seed_threshold: np.float32) -> None:  # pragma: no cover
    """The flagged voxels in raster order: x and flags; `with_links`, their affinities to
    their -1 neighbours and their neighbours' positions; with `erode`, MEMBER on the
    CORE voxels `eroded_row` keeps, and with both, their union-find in `parent` along
    affinities above seed_threshold inside each block (as `components.components`).
    `flat`: the flags (shape `shape`), flat; `words`: the same as uint64 (unflagged runs
    are skipped a word at a time).

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
        pos = np.empty((2, plane if with_links else 0), np.int32)
        if with_links and z0 > 0:
            _positions(flat, words, rows, ny, nx, z0 - 1, pos[(z0 - 1) & 1])
        kept = np.empty(nw, np.uint64)
        for z in range(z0, z1):
            c = z & 1
            for y in range(ny):
                r = z * ny + y
                b0 = r * nx
                x = 0
                if erode and rows[r + 1] > rows[r]:
                    eroded_row(core, z, y, ball_dz, ball_dy, ball_half_length, kept)
                for k in range(rows[r], rows[r + 1]):
                    x = _next_flagged(flat, words, b0, x, nx)
                    f = flat[b0 + x]
                    member = erode and f & CORE != 0 and \
                        (kept[x >> 6] >> np.uint64(x & 63)) & np.uint64(1) != 0
                    if member:
                        f |= MEMBER
                    xs[k] = x
                    flags[k] = f
                    if with_links:
                        affinity[0, k] = affs[0, z, y, x]
                        affinity[1, k] = affs[1, z, y, x]
                        affinity[2, k] = affs[2, z, y, x]
                        t = y * nx + x
                        pos[c, t] = k
                        neighbours[1, k] = -1
                        neighbours[3, k] = -1
                        j = -1
                        if z > 0 and flat[b0 + x - plane] != 0:
                            j = pos[1 - c, t]
                            neighbours[1, j] = k
                        neighbours[0, k] = j
                        j = -1
                        if y > 0 and flat[b0 + x - nx] != 0:
                            j = pos[c, t - nx]
                            neighbours[3, j] = k
                        neighbours[2, k] = j
                        if member:
                            link(flags, neighbours, affinity, parent, k, f, z > z0,
                                 seed_threshold)
                    x += 1
        if with_links and z1 < nz:  # the block's last section: its +z links into the next
            _link_into_next_block(flat, words, rows, xs, neighbours, z1, ny, nx,
                                  pos[z1 & 1])


@njit(cache=True, parallel=True)
def _flat_kernel(rows: np.ndarray, xs: np.ndarray, nx: int,
                 out: np.ndarray) -> None:  # pragma: no cover - compiled
    """Flat voxel index of every position."""
    for r in prange(len(rows) - 1):
        for i in range(rows[r], rows[r + 1]):
            out[i] = r * nx + xs[i]


def _carve(pool: np.ndarray | None, used: int, shape: tuple[int, int],
           dtype: type) -> tuple[np.ndarray, int]:
    """An empty array from pool[used:] if it fits there (fresh otherwise), and the bytes
    of the pool used after it."""
    size = shape[0] * shape[1] * np.dtype(dtype).itemsize
    if pool is None or used + size > len(pool):
        return np.empty(shape, dtype), used
    return pool[used:used + size].view(dtype).reshape(shape), used + size


def index(flags: np.ndarray, counts: np.ndarray, core: np.ndarray, affs: np.ndarray | None,
          ball: Ball | None = None, seed_threshold: float = math.inf,
          pool: np.ndarray | None = None) -> ActiveVoxels:
    """Index the voxels with a flag (`counts`: how many per row); link them and gather
    their affinities when `affs` (float32, contiguous) is given; with a `ball`, set
    MEMBER on the CORE voxels (`core`: their bits, see `core_bits`) with no non-core
    voxel within it (cost per row: the ball's rows' lengths summed, times the row's
    words). With both, scratch[0] holds the union-find of those seed voxels along
    affinities above `seed_threshold` inside each block of sections (see
    `components.components`, `linked`). neighbours, affinity and scratch are taken from
    `pool` (bytes, 4-byte aligned; the label volume's own memory, which no stage needs
    before the end) as far as they fit: fresh memory costs the kernel a page fault and
    zeroing per page."""
    nz, ny, nx = (int(s) for s in flags.shape)
    rows = np.zeros(nz * ny + 1, np.int64)
    np.cumsum(counts, out=rows[1:])
    n = int(rows[-1])
    if n >= 2**30:  # int32 positions, and a root plus its component's size
        raise ValueError(f"{n} active voxels: too many for one block, segment in slabs "
                         "(--block-sections)")
    xs = np.empty(n, np.int32)
    flags_of = np.empty(n, np.uint8)
    m = n if affs is not None else 0
    neighbours, used = _carve(pool, 0, (4, m), np.int32)
    affinity, used = _carve(pool, used, (3, m), np.float32)
    scratch, used = _carve(pool, used, (3, m), np.int32)
    b = ball or Ball.empty()
    flat = flags.reshape(-1)
    words = flat[:len(flat) // 8 * 8].view(np.uint64)
    _index_kernel(flat, words, (nz, ny, nx), rows, section_blocks(nz), xs, flags_of,
                  affs if affs is not None else _NO_AFFINITIES, affinity, neighbours,
                  affs is not None, core, b.dz, b.dy, b.half_length, ball is not None,
                  scratch[0], np.float32(seed_threshold))
    return ActiveVoxels((nz, ny, nx), rows, xs, flags_of, neighbours, affinity, scratch)


def scan(affs: np.ndarray, threshold: float, core_threshold: float = math.inf,
         ball: Ball | None = None, pool: np.ndarray | None = None) -> ActiveVoxels:
    """Active voxels of float32 affinities: edge bits at `threshold`, CORE at
    `core_threshold`, MEMBER on the core voxels a `ball` leaves, linked at
    `core_threshold` (see `index`)."""
    nz, ny, nx = (int(s) for s in affs.shape[1:])
    flags = np.empty((nz, ny, nx), np.uint8)
    counts = np.empty(nz * ny, np.int64)
    core = np.empty((nz, ny, -(-nx // 64)), np.uint64)
    _scan_kernel(affs, np.float32(threshold), np.float32(core_threshold), flags, counts,
                 core)
    return index(flags, counts, core, affs, ball, core_threshold, pool)


def of_mask(mask: np.ndarray, affs: np.ndarray | None,
            ball: Ball | None = None) -> ActiveVoxels:
    """The voxels of a boolean mask as active voxels (no edge bits; CORE set)."""
    flags = np.ascontiguousarray(mask, dtype=bool).view(np.uint8) * np.uint8(CORE)
    counts = np.count_nonzero(flags, axis=2).reshape(-1).astype(np.int64)
    return index(flags, counts, core_bits(flags), affs, ball)


def flat_index(act: ActiveVoxels) -> np.ndarray:
    """Flat voxel index of every position."""
    out = np.empty(len(act.xs), np.int64)
    _flat_kernel(act.rows, act.xs, act.shape[2], out)
    return out


def erode(core: np.ndarray, voxel_size_zyx: tuple[float, float, float],
          distance_nm: float) -> np.ndarray:
    """The seed erosion on its own: voxels of `core` with no background voxel within
    `distance_nm` (anisotropic), i.e. `edt(core, anisotropy=voxel_size_zyx,
    black_border=False) > distance_nm`."""
    if distance_nm < 0:
        return np.ones(core.shape, bool)
    act = of_mask(core, None, Ball.of(voxel_size_zyx, distance_nm, core.shape[2]))
    out = np.zeros(core.shape, bool)
    out.reshape(-1)[flat_index(act)[(act.flags & MEMBER) != 0]] = True
    return out
