"""Our segmentation one 3-D block at a time, in three passes whose answer is the whole volume's.

Each pass reads a block's region (the block, its *core*, with a halo) and computes what the
whole-volume run (`seeded.segment_volume`) would compute at the core's voxels:

1. `seeds`: the seed voxels (eroded in-plane interiors; the halo covers the erosion ball) and
   their connected components inside the core.
2. `growth`: the seeds, now numbered for the whole volume, grown `grow_layers` layers; the
   voxels still unreached and linked to one another (the rescue's members) and their components
   inside the core.
3. `fragments`: seeds and rescued pieces, numbered for the whole volume, grown to the end; the
   core's fragments and the region-graph edges of its voxels (each voxel's -z, -y and -x faces).

Between the passes the caller joins the core components across block faces (`face_pairs` gives
the links) and numbers them for the whole volume by their first voxel, as the whole-volume
labelling does; after the third it agglomerates the union of the blocks' region graphs with
`agglomeration.merge`. A halo is exact, not approximate: growth moves one voxel a layer, and after
the rescue every unreached piece has fewer than `max(min_seed, 2)` voxels, so the second growth
ends within that many layers (`halos`). The region's outermost shell sees truncated edges; the
halos keep what it gets wrong away from the core and its neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from connectome_query.reconstruct.segment.active import flat_index, scan
from connectome_query.reconstruct.segment.components import components
from connectome_query.reconstruct.segment.contacts import QUANTUM
from connectome_query.reconstruct.segment.erosion import Ball
from connectome_query.reconstruct.segment.growth import grow_layers, mark_unreached
from connectome_query.reconstruct.segment.layout import MEMBER, ActiveVoxels, as_float32
from connectome_query.reconstruct.segment.seeded import SegParams

Box = tuple[tuple[int, int, int], tuple[int, int, int]]
"""(lo, hi) of the core in the region's own coordinates."""


@dataclass(frozen=True)
class Halos:
    """Voxels of context each pass reads on every side of its core, per axis (z, y, x)."""

    seeds: tuple[int, int, int]
    growth: tuple[int, int, int]
    fragments: tuple[int, int, int]


def halos(p: SegParams, voxel_size_zyx: tuple[float, float, float]) -> Halos:
    """The halos that make each pass exact (see the module docstring): the erosion ball and
    one voxel of truncated edges; the growth's layers, one voxel whose neighbours the rescue
    looks at, one of truncated edges; the last growth's layers (fewer than the rescue's
    smallest piece), one voxel of region-graph faces, one of truncated edges."""
    ball = Ball.of(voxel_size_zyx, p.seed_distance_nm, 1 << 16)
    reach = (int(np.abs(ball.dz).max(initial=0)), int(np.abs(ball.dy).max(initial=0)),
             int(ball.half_length.max(initial=0)))
    g = int(p.grow_layers) + 2
    f = max(p.min_seed, 2) - 1 + 2
    return Halos(tuple(r + 1 for r in reach), (g, g, g), (f, f, f))  # type: ignore[arg-type]


def _core_mask(shape: tuple[int, ...], core: Box) -> np.ndarray:
    m = np.zeros(shape, bool)
    (z0, y0, x0), (z1, y1, x1) = core
    m[z0:z1, y0:y1, x0:x1] = True
    return m


def _to_positions(act: ActiveVoxels, flat: np.ndarray, dense: np.ndarray) -> np.ndarray:
    """A dense (region) array's values at the active positions."""
    return dense.reshape(-1)[flat]


def _core_of(values: np.ndarray, flat: np.ndarray, shape: tuple[int, ...], core: Box,
             dtype: type) -> np.ndarray:
    """Values at the active positions as a dense array of the core (0 elsewhere)."""
    dense: np.ndarray = np.zeros(shape, dtype)
    dense.reshape(-1)[flat] = values
    (z0, y0, x0), (z1, y1, x1) = core
    return np.ascontiguousarray(dense[z0:z1, y0:y1, x0:x1])


def _compact(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct non-zero ids, ids as 1..m in that order, 0 kept) as int32."""
    uniq = np.unique(ids)
    uniq = uniq[uniq != 0]
    local = np.searchsorted(uniq, ids).astype(np.int32) + 1
    local[ids == 0] = 0
    return uniq, local


def _activity(affs: np.ndarray, p: SegParams, erode: tuple[float, float, float] | None
              ) -> tuple[ActiveVoxels, np.ndarray]:
    """Active voxels of the region (seed erosion when `erode` gives the voxel size) and the
    flat index of each."""
    ball = Ball.of(erode, p.seed_distance_nm, affs.shape[3]) if erode is not None else None
    act = scan(affs, p.grow_threshold, p.seed_threshold if erode is not None else np.inf, ball)
    return act, flat_index(act)


def _members_in_core(act: ActiveVoxels, flat: np.ndarray, core: Box) -> None:
    """Clear MEMBER outside the core: components are found inside the core only."""
    inside = _core_mask(act.shape, core).reshape(-1)[flat]
    act.flags[~inside] &= np.uint8(~MEMBER & 0xFF)


def seeds(affs: np.ndarray, core: Box, voxel_size_zyx: tuple[float, float, float],
          p: SegParams) -> np.ndarray:
    """Pass 1: the seed components inside the core, as core-local ids 1..n in order of first
    voxel (uint32, core shape; 0 elsewhere). No size filter: pieces are counted over the
    whole volume before seeds under `min_seed` voxels are dropped."""
    affs = as_float32(affs)
    act, flat = _activity(affs, p, voxel_size_zyx)
    _members_in_core(act, flat, core)
    labels = np.zeros(len(act.flags), np.int32)
    components(act, p.seed_threshold, 1, labels, act.scratch[:2])
    return _core_of(labels, flat, act.shape, core, np.uint32)


def growth(affs: np.ndarray, seed_ids: np.ndarray, core: Box,
           p: SegParams) -> tuple[np.ndarray, np.ndarray]:
    """Pass 2: (the seeds grown `grow_layers` layers, as the ids given in `seed_ids` (the
    region's seeds numbered for the whole volume), uint64 core; the rescue's members
    inside the core as components 1..n, uint32 core)."""
    affs = as_float32(affs)
    act, flat = _activity(affs, p, None)
    ids, labels = _compact(_to_positions(act, flat, seed_ids))
    s = act.scratch
    grow_layers(labels, act.flags, act.neighbours, act.affinity, np.float32(p.grow_threshold),
                int(p.grow_layers), s[0], s[1], np.empty_like(labels))
    mark_unreached(labels, act.flags, act.neighbours)
    _members_in_core(act, flat, core)
    rescue = np.zeros(len(act.flags), np.int32)
    components(act, p.grow_threshold, 1, rescue, s[:2], sparse=True)
    grown = np.concatenate([[0], ids]).astype(np.uint64)[labels]
    return (_core_of(grown, flat, act.shape, core, np.uint64),
            _core_of(rescue, flat, act.shape, core, np.uint32))


def _region_edges(lab: np.ndarray, affs: np.ndarray, core: Box
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Region-graph edges of the core's voxels: each labelled voxel's faces to a labelled
    -1 neighbour of another label (in the region): pairs (a < b), summed affinity in
    units of 1/QUANTUM (int64) and face count, pairs sorted."""
    (z0, y0, x0), (z1, y1, x1) = core
    keys, weights = [], []
    for c in range(3):
        lo = [z0, y0, x0]
        if lo[c] == 0:  # the region's first plane has no -1 neighbour in it
            lo[c] = 1
        here = (slice(lo[0], z1), slice(lo[1], y1), slice(lo[2], x1))
        below = list(here)
        below[c] = slice(lo[c] - 1, (z1, y1, x1)[c] - 1)
        a, b = lab[here].reshape(-1), lab[tuple(below)].reshape(-1)
        ok = (a != 0) & (b != 0) & (a != b)
        if not ok.any():
            continue
        a, b = a[ok], b[ok]
        keys.append(np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1))
        w = affs[c][here].reshape(-1)[ok].astype(np.float64)
        weights.append(np.floor(w * QUANTUM + 0.5))
    if not keys:
        return np.zeros((0, 2), np.uint64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    pairs, inv = np.unique(np.concatenate(keys), axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    # whole numbers below 2**53 add exactly in float64, in any order
    sums = np.bincount(inv, weights=np.concatenate(weights), minlength=len(pairs))
    return (pairs.astype(np.uint64), sums.astype(np.int64),
            np.bincount(inv, minlength=len(pairs)).astype(np.int64))


def fragments(affs: np.ndarray, fragment_ids: np.ndarray, core: Box, p: SegParams
              ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Pass 3: (the fragments grown to the end, as the ids of `fragment_ids` (seeds and
    rescued pieces of the region, numbered for the whole volume), uint64 core; the core's
    region-graph edges (pairs, sums in 1/QUANTUM, counts))."""
    affs = as_float32(affs)
    act, flat = _activity(affs, p, None)
    ids, labels = _compact(_to_positions(act, flat, fragment_ids))
    s = act.scratch
    grow_layers(labels, act.flags, act.neighbours, act.affinity, np.float32(p.grow_threshold),
                64, s[0], s[1], np.empty_like(labels))
    lab = np.zeros(act.shape, np.uint64)
    lab.reshape(-1)[flat] = np.concatenate([[0], ids]).astype(np.uint64)[labels]
    edges = _region_edges(lab, affs, core)
    (z0, y0, x0), (z1, y1, x1) = core
    return np.ascontiguousarray(lab[z0:z1, y0:y1, x0:x1]), edges


def face_pairs(below: np.ndarray, above: np.ndarray, affinity: np.ndarray,
               threshold: float) -> np.ndarray:
    """Links across one block face: (label below, label above) of the voxel pairs facing
    each other across it, both labelled, whose affinity (the upper voxel's, to its -1
    neighbour) is above `threshold`; distinct pairs (k, 2)."""
    a, b = below.reshape(-1), above.reshape(-1)
    ok = (a != 0) & (b != 0) & (affinity.reshape(-1) > np.float32(threshold))
    if not ok.any():
        return np.zeros((0, 2), np.uint64)
    return np.unique(np.stack([a[ok], b[ok]], axis=1).astype(np.uint64), axis=0)
