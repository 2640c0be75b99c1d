"""How the segmentation stores a volume's active voxels: flag bits, positions, blocks of sections.

A voxel is active when it has an edge above the growth threshold or is a seed core; only active
voxels can ever be labelled, so every stage works on them alone (about a sixth of a synthetic
volume), stored compactly in raster order (`ActiveVoxels`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Flag byte of a voxel: bit d (d = 0..5) says its edge to the face neighbour in direction
# d (-z, +z, -y, +y, -x, +x) exists and is above the growth threshold.
EDGES = 63
CORE = 64  # all of the voxel's in-plane affinities are above the seed threshold
MEMBER = 128  # the voxel is one a connected-components pass labels
BLOCKS = 16  # blocks of sections indexed, and labelled, on their own (threads over them)
ALL_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)


@dataclass(frozen=True)
class ActiveVoxels:
    """The active voxels of a volume, compact, in raster order.

    Position i has x `xs[i]`; row (z, y) holds positions rows[z * ny + y] .. rows[z * ny + y + 1];
    `neighbours[k, i]` is the position of its active neighbour along -z, +z, -y, +y (k = 0..3;
    -1 where that neighbour is not active); along x its neighbours are i - 1 and i + 1.
    `affinity[c, i]` is the affinity of i's edge to its -1 neighbour along axis c.
    """

    shape: tuple[int, int, int]
    rows: np.ndarray  # (nz * ny + 1,) int64
    xs: np.ndarray  # (n,) int32
    flags: np.ndarray  # (n,) uint8: the flag byte, then MEMBER as stages set it
    neighbours: np.ndarray  # (4, n) int32
    affinity: np.ndarray  # (3, n) float32
    scratch: np.ndarray  # (3, n) int32, for the stages (union-find parents, growth queues)


def section_blocks(nz: int) -> np.ndarray:
    """Bounds of `BLOCKS` blocks of sections (fewer when there are fewer sections)."""
    return np.unique(np.linspace(0, nz, BLOCKS + 1).astype(np.int64))


def check_affinities(affs: np.ndarray) -> None:
    """Refuse anything but affinities (3, z, y, x) in the waterz layout."""
    if affs.ndim != 4 or affs.shape[0] != 3:
        raise ValueError(f"affinities must have shape (3, z, y, x), got {affs.shape}")


def as_float32(affs: np.ndarray) -> np.ndarray:
    """Affinities as a C-contiguous float32 array (no copy when they already are)."""
    return np.ascontiguousarray(affs, dtype=np.float32)
