"""Index helpers for face neighbours on the voxel lattice (pure logic, no I/O)."""

from __future__ import annotations

import numpy as np


def neighbour_slices(axis: int, ndim: int = 3) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """(lo, hi): `a[hi]` holds every voxel that has a -1 neighbour along `axis`, and
    `a[lo]` that neighbour, aligned. This is the waterz affinity layout: `affs[c][hi]`
    links `a[hi]` to `a[lo]` along axis c."""
    if not 0 <= axis < ndim:
        raise ValueError(f"axis {axis} is outside 0..{ndim - 1}")
    lo = [slice(None)] * ndim
    hi = [slice(None)] * ndim
    lo[axis] = slice(None, -1)
    hi[axis] = slice(1, None)
    return tuple(lo), tuple(hi)


def sever(affs: np.ndarray, masked: np.ndarray, before: tuple[int, int, int] = (0, 0, 0)
          ) -> np.ndarray:
    """Affinities (3, z, y, x; waterz layout) with every link that touches a masked voxel set
    to 0. `masked` (bool) covers the affinities' voxels and, where `before[c]` is 1, the plane
    before them along axis c (whose voxels the first plane links to); where it is 0 the first
    plane's links leave the volume and only their own voxel counts."""
    if not masked.any():
        return affs
    shape = affs.shape[1:]
    if any(b not in (0, 1) for b in before) or masked.shape != tuple(
            n + b for n, b in zip(shape, before, strict=True)):
        raise ValueError(f"mask of shape {masked.shape} does not fit affinities of "
                         f"{shape} with {before} planes before them")
    m = np.pad(masked, [(1 - b, 0) for b in before])  # one plane before along each axis
    here = m[1:, 1:, 1:]
    prev = (m[:-1, 1:, 1:], m[1:, :-1, 1:], m[1:, 1:, :-1])
    out = affs.copy()
    for c in range(3):
        out[c][here | prev[c]] = 0
    return out
