"""Index helpers for face neighbours on the voxel lattice (pure logic, no I/O)."""

from __future__ import annotations


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
