"""Boxes and block grids: how a volume is cut into 3-D blocks, and the halo each block is read with.

A `Box` is a half-open range of voxels per axis (z, y, x). A `Grid` cuts a volume into blocks of
one shape from the origin (the last block along an axis may be shorter); blocks are numbered in
raster order, and a block with its halo is clipped to the volume, never padded.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

Triple = tuple[int, int, int]


@dataclass(frozen=True)
class Box:
    """Voxels lo[a] <= i < hi[a] along each axis a (z, y, x)."""

    lo: Triple
    hi: Triple

    @property
    def shape(self) -> Triple:
        return (self.hi[0] - self.lo[0], self.hi[1] - self.lo[1], self.hi[2] - self.lo[2])

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def slices(self, origin: Triple = (0, 0, 0)) -> tuple[slice, slice, slice]:
        """Index of this box in an array whose first voxel is `origin`."""
        return (slice(self.lo[0] - origin[0], self.hi[0] - origin[0]),
                slice(self.lo[1] - origin[1], self.hi[1] - origin[1]),
                slice(self.lo[2] - origin[2], self.hi[2] - origin[2]))

    def grow(self, halo: Triple, shape: Triple) -> Box:
        """This box with `halo` voxels more on each side, clipped to a volume of `shape`."""
        lo = tuple(max(a - h, 0) for a, h in zip(self.lo, halo, strict=True))
        hi = tuple(min(b + h, s) for b, h, s in zip(self.hi, halo, shape, strict=True))
        return Box(lo, hi)  # type: ignore[arg-type]

    def intersect(self, other: Box) -> Box | None:
        lo = tuple(max(a, b) for a, b in zip(self.lo, other.lo, strict=True))
        hi = tuple(min(a, b) for a, b in zip(self.hi, other.hi, strict=True))
        if any(a >= b for a, b in zip(lo, hi, strict=True)):
            return None
        return Box(lo, hi)  # type: ignore[arg-type]

    def contains(self, zyx: np.ndarray) -> np.ndarray:
        """Which of the points (n, 3) (voxel indices) lie in the box."""
        p = np.asarray(zyx).reshape(-1, 3)
        return np.all((p >= np.array(self.lo)) & (p < np.array(self.hi)), axis=1)


def parse_triple(text: str, what: str) -> Triple:
    """'Z,Y,X' as three positive integers; ValueError naming `what` otherwise."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        vals = tuple(int(p) for p in parts)
    except ValueError:
        vals = ()
    if len(vals) != 3 or min(vals) < 1:
        raise ValueError(f"{what} must be three positive integers Z,Y,X, got {text!r}")
    return vals


@dataclass(frozen=True)
class Grid:
    """A volume of `shape` cut into blocks of `block` (z, y, x) from the origin."""

    shape: Triple
    block: Triple

    def __post_init__(self) -> None:
        if len(self.shape) != 3 or len(self.block) != 3 or min(self.block) < 1:
            raise ValueError(f"block shape must be three positive integers, got {self.block}")

    @property
    def counts(self) -> Triple:
        """Blocks along z, y, x."""
        return tuple(-(-s // b) for s, b in zip(self.shape, self.block, strict=True))  # type: ignore[return-value]

    def __len__(self) -> int:
        return math.prod(self.counts)

    def index(self, number: int) -> Triple:
        """Grid position (iz, iy, ix) of block `number` (raster order)."""
        return tuple(int(v) for v in np.unravel_index(number, self.counts))  # type: ignore[return-value]

    def number(self, index: Triple) -> int:
        return int(np.ravel_multi_index(index, self.counts))

    def box(self, number: int) -> Box:
        """The voxels of block `number`."""
        idx = self.index(number)
        lo = tuple(i * b for i, b in zip(idx, self.block, strict=True))
        hi = tuple(min(a + b, s) for a, b, s in zip(lo, self.block, self.shape, strict=True))
        return Box(lo, hi)  # type: ignore[arg-type]

    def boxes(self) -> Iterator[tuple[int, Box]]:
        for n in range(len(self)):
            yield n, self.box(n)

    def lower_neighbour(self, number: int, axis: int) -> int | None:
        """The block before `number` along `axis`, if any."""
        idx = list(self.index(number))
        if idx[axis] == 0:
            return None
        idx[axis] -= 1
        return self.number(tuple(idx))  # type: ignore[arg-type]

    def of_points(self, zyx: np.ndarray) -> np.ndarray:
        """The block number holding each point (n, 3) (voxel indices inside the volume)."""
        p = np.asarray(zyx, np.int64).reshape(-1, 3) // np.array(self.block)
        if len(p) == 0:
            return np.zeros(0, np.int64)
        return np.ravel_multi_index(tuple(p.T), self.counts).astype(np.int64)


def inner_chunks(block: Triple, target: Triple = (32, 64, 64)) -> Triple:
    """Inner chunk shape of a sharded array whose shards are `block`: per axis the largest
    divisor of the block's extent not above the target (reads of a halo decode only the
    inner chunks they touch)."""
    out = []
    for b, t in zip(block, target, strict=True):
        out.append(max(d for d in range(1, min(b, t) + 1) if b % d == 0))
    return out[0], out[1], out[2]


def aligned(block: Triple, chunk: Triple) -> Triple:
    """`block` rounded up to a multiple of `chunk` per axis: tiles of this shape write whole
    chunks of an array chunked by `chunk`, so no two tasks write one chunk."""
    return tuple(-(-b // c) * c for b, c in zip(block, chunk, strict=True))  # type: ignore[return-value]


def even_yx(block: Triple) -> Triple:
    """`block` with even y and x (blocks of the affinity network start at even pixels, so
    its 2x in-plane pooling pairs the same pixels in every block)."""
    return block[0], block[1] + block[1] % 2, block[2] + block[2] % 2
