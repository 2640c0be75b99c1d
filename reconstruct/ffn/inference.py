"""Flood-filling inference on one volume: seeds, the canvas, face-max movement (no I/O).

A seed starts an object: the mask's logits are the prior everywhere and the seed's value at the
seed voxel. The FOV, centred on the seed, is predicted; then for each of its six faces (the planes
`DELTA` from the centre, within `DELTA` of it in the other two axes) whose most probable voxel
reaches the move threshold, the FOV is queued at that voxel, one FOV per cell of a grid of the
move's size. As in the published algorithm, a queued FOV is not predicted if the mask at its
centre has since fallen below the move threshold, and the fill stops, with no object, once the
mask at its seed falls below it. When no position is left, the voxels of the fill's box above
the segment threshold and not in an earlier object become the object (the published rule),
provided the seed is one of them and there are at least `min_size`; else they are marked tried.
A seed inside a finished or tried object starts nothing. Seeds are the peaks of the distance
transform of the boundary map's interior.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass

import cc3d
import fastremap
import numpy as np
from scipy import ndimage

from connectome_query.reconstruct.ffn.model import DELTA, FOV, P_EMPTY, P_SEED, logit

Predictor = Callable[[tuple[int, int, int], np.ndarray, np.ndarray], np.ndarray]
"""(FOV corner in the volume, image, mask logits) -> new mask logits over the FOV. A predictor
may also offer `many(corners, images, masks)`, the same for a stack of FOVs in one call: then
the two seed orders of `segment` share each call."""
Request = tuple[tuple[int, int, int], np.ndarray, np.ndarray]
Fill = Generator[Request, np.ndarray, int]


@dataclass(frozen=True)
class FFNParams:
    """Inference settings (probabilities in (0, 1), sizes in voxels)."""

    move_threshold: float = 0.9
    segment_threshold: float = 0.6
    min_size: int = 100
    boundary_threshold: float = 0.5  # seeds lie where the boundary map is below this
    min_seed_distance_nm: float = 24.0  # a peak of the distance transform at least this deep
    max_steps: int = 4000  # FOV predictions one object may take
    skip_weak: bool = True
    """The published algorithm's checks against the move threshold: a queued FOV whose centre
    fell below it is skipped, and a fill whose seed falls below it stops with no object.
    Without them (the first inference here), every queued FOV is predicted and a fill runs
    until its queue is empty; they cut the FOV predictions of fills that fail."""
    connected_to_seed: bool = False
    """True: the object is only the part connected to the seed (the first inference here).
    A fill that ran away, across the volume, and left little above the threshold around its
    seed then made an object too small to keep and marked only that part tried, so the next
    seed in the same cell ran away again (10 fills took 54% of the FOV predictions of a 9-cell
    volume). False: the published rule, every voxel the fill left above the threshold."""

    def check(self) -> None:
        for name in ("move_threshold", "segment_threshold", "boundary_threshold"):
            v = getattr(self, name)
            if not 0.0 < v < 1.0:
                raise ValueError(f"FFN parameter {name} must lie in (0, 1), got {v}")
        if self.min_size < 1:
            raise ValueError(f"FFN parameter min_size must be at least 1, got {self.min_size}")
        if self.max_steps < 1:
            raise ValueError(f"FFN parameter max_steps must be at least 1, got {self.max_steps}")
        if self.min_seed_distance_nm < 0:
            raise ValueError("FFN parameter min_seed_distance_nm must not be negative, got "
                             f"{self.min_seed_distance_nm}")


def check_geometry(fov: Sequence[int], delta: Sequence[int]) -> None:
    if len(fov) != 3 or any(int(f) < 3 or int(f) % 2 == 0 for f in fov):
        raise ValueError(f"FOV must be three odd sizes of at least 3, got {tuple(fov)}")
    if len(delta) != 3 or any(not 1 <= int(d) <= int(f) // 2 for d, f in zip(delta, fov,
                                                                           strict=True)):
        raise ValueError(f"FOV moves {tuple(delta)} must each lie in 1..half the FOV {tuple(fov)}")


def seeds(boundary: np.ndarray, voxel_size_zyx: Sequence[float],
          params: FFNParams = FFNParams()) -> np.ndarray:
    """Seed voxels (n, 3), deepest first: local maxima (over the 26 neighbours; one voxel per
    plateau) of the distance (nm) from the boundary map's boundary voxels. A thin process
    beside a soma has its own peak; the extra peaks inside large objects cost nothing, as
    a seed inside a finished object is skipped."""
    inside = boundary < params.boundary_threshold
    dist = ndimage.distance_transform_edt(inside, sampling=tuple(float(v) for v in
                                                                 voxel_size_zyx))
    peak = (dist == ndimage.maximum_filter(dist, size=3, mode="constant")) & \
        (dist >= max(params.min_seed_distance_nm, 1e-6))
    # one seed per plateau of equal peaks: its first voxel
    plateaus = cc3d.connected_components(peak, connectivity=26)
    ids, first = fastremap.unique(plateaus, return_index=True)
    zyx = np.array(np.unravel_index(first[ids != 0], peak.shape)).reshape(3, -1).T
    depth = dist[tuple(zyx.T)]
    order = np.lexsort((zyx[:, 2], zyx[:, 1], zyx[:, 0], -depth))
    return zyx[order]


def _squared_distance(sl: Sequence[slice], c: Sequence[int]) -> np.ndarray:
    """Each voxel's squared distance from c over the box `sl` (integers), a sum of per-axis
    terms broadcast over the box."""
    out: np.ndarray = np.zeros((1, 1, 1), np.int64)
    for i, (s, p) in enumerate(zip(sl, c, strict=True)):
        shape = [1, 1, 1]
        shape[i] = s.stop - s.start
        out = out + ((np.arange(s.start, s.stop) - p) ** 2).reshape(shape)
    return out


def face_moves(mask: np.ndarray, c: Sequence[int], delta: Sequence[int], lo: Sequence[int],
               hi: Sequence[int], threshold: float) -> list[tuple[int, ...]]:
    """Face-max movement from centre c: for each of the six faces (the planes `delta` from c,
    within `delta` of c in the other axes, clipped to [lo, hi)), its most probable voxel
    (the nearest to the face's centre among equals) when its logit reaches `threshold`."""
    out = []
    for ax in range(3):
        for sign in (-1, 1):
            f = c[ax] + sign * delta[ax]
            if not lo[ax] <= f < hi[ax]:
                continue
            sl = [slice(max(p - d, a), min(p + d + 1, b)) for p, d, a, b in
                  zip(c, delta, lo, hi, strict=True)]
            sl[ax] = slice(f, f + 1)
            face = mask[tuple(sl)]
            k = int(np.argmax(face - 1e-4 * _squared_distance(sl, c)))
            if face.flat[k] < threshold:
                continue
            off = np.unravel_index(k, face.shape)
            out.append(tuple(int(s.start + o) for s, o in zip(sl, off, strict=True)))
    return out


class Canvas:
    """One pass of flood filling over a volume, seed after seed."""

    def __init__(self, image: np.ndarray, predictor: Predictor, params: FFNParams = FFNParams(),
                 fov: Sequence[int] = FOV, delta: Sequence[int] = DELTA) -> None:
        params.check()
        check_geometry(fov, delta)
        if image.ndim != 3:
            raise ValueError(f"the image must be 3-D (z, y, x), got shape {image.shape}")
        self.shape = image.shape
        self.fov = tuple(int(f) for f in fov)
        self.delta = tuple(int(d) for d in delta)
        self.half = tuple(f // 2 for f in self.fov)
        pad = [(h, h) for h in self.half]
        self.image = np.pad(image.astype(np.float32), pad)
        self.predictor = predictor
        self.params = params
        self.empty = np.float32(logit(P_EMPTY))
        self.mask = np.full(self.image.shape, self.empty, np.float32)
        self.seg = np.zeros(self.image.shape, np.uint32)
        self.tried = np.zeros(self.image.shape, bool)  # in an object dropped as too small
        self.n_objects = 0
        self.steps = 0

    def _fov(self, c: tuple[int, ...]) -> tuple[slice, ...]:
        """The FOV centred on padded position c."""
        return tuple(slice(p - h, p + h + 1) for p, h in zip(c, self.half, strict=True))

    def _moves(self, c: tuple[int, ...]) -> list[tuple[int, ...]]:
        return face_moves(self.mask, c, self.delta, self.half,
                          tuple(h + n for h, n in zip(self.half, self.shape, strict=True)),
                          logit(self.params.move_threshold))

    def segment_at(self, seed: Sequence[int]) -> int:
        """Flood-fill from a seed (volume coordinates); the new object's id, or 0 when the seed
        lies in an earlier object or in one dropped as too small, or its object is under
        `min_size`."""
        fill = self.fill(seed)
        try:
            request = next(fill)
            while True:
                request = fill.send(self.predictor(*request))
        except StopIteration as done:
            return int(done.value)

    def fill(self, seed: Sequence[int]) -> Fill:
        """`segment_at` as a generator: yields each FOV to predict (corner, image, mask
        logits), is sent its new logits, and returns the object's id (or 0)."""
        c0 = tuple(int(s) + h for s, h in zip(seed, self.half, strict=True))
        if self.seg[c0] or self.tried[c0]:
            return 0
        self.mask[c0] = logit(P_SEED)
        lo = np.array(c0)
        hi = np.array(c0) + 1
        queue: deque[tuple[int, ...]] = deque([c0])
        seen = {tuple(p // d for p, d in zip(c0, self.delta, strict=True))}
        steps = 0
        move = np.float32(logit(self.params.move_threshold))
        check = self.params.skip_weak
        weak = False
        while queue and steps < self.params.max_steps:
            c = queue.popleft()
            if check and self.mask[c] < move:  # weakened since it was queued
                continue
            sl = self._fov(c)
            corner = tuple(s.start - h for s, h in zip(sl, self.half, strict=True))
            new = yield corner, self.image[sl], self.mask[sl]
            self.mask[sl] = np.where(self.seg[sl] != 0, self.empty, new)
            steps += 1
            lo = np.minimum(lo, [s.start for s in sl])
            hi = np.maximum(hi, [s.stop for s in sl])
            if check and self.mask[c0] < move:  # the seed lost its object
                weak = True
                break
            for m in self._moves(c):
                # one FOV per cell of a grid of the step's size: the FOV reaches past its
                # cell's faces, and an object costs at most its volume / the cell's
                key = tuple(p // d for p, d in zip(m, self.delta, strict=True))
                if key not in seen and not self.seg[m]:
                    seen.add(key)
                    queue.append(m)
        self.steps += steps
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
        obj = (self.mask[box] >= logit(self.params.segment_threshold)) & (self.seg[box] == 0)
        self.mask[box] = self.empty
        local = tuple(p - s.start for p, s in zip(c0, box, strict=True))
        if weak or not obj[local]:
            self.tried[c0] = True
            return 0
        if self.params.connected_to_seed:
            cc = cc3d.connected_components(obj, connectivity=6)
            obj = cc == cc[local]
        if int(obj.sum()) < self.params.min_size:  # too small: no seed inside it starts again
            self.tried[box] |= obj
            return 0
        self.n_objects += 1
        self.seg[box][obj] = self.n_objects
        return self.n_objects

    def run(self, seed_list: np.ndarray) -> np.ndarray:
        for s in seed_list:
            self.segment_at(s)
        return self.segmentation()

    def fills(self, seed_list: np.ndarray) -> Generator[Request, np.ndarray, None]:
        """`run` as one generator of FOV requests over all seeds (see `fill`)."""
        for s in seed_list:
            yield from self.fill(s)

    def segmentation(self) -> np.ndarray:
        core = tuple(slice(h, h + n) for h, n in zip(self.half, self.shape, strict=True))
        return self.seg[core].copy()


def run_together(fills: list[Generator[Request, np.ndarray, None]],
                 many: Callable[[list[tuple[int, int, int]], np.ndarray, np.ndarray],
                                np.ndarray]) -> None:
    """Drive independent canvases in lockstep: each round, one call of `many` predicts the
    pending FOV of every canvas still filling. Each canvas sees exactly what it would alone."""
    pending: dict[int, Request] = {}
    for k, f in enumerate(fills):
        r = next(f, None)
        if r is not None:
            pending[k] = r
    while pending:
        keys = sorted(pending)
        out = many([pending[k][0] for k in keys], np.stack([pending[k][1] for k in keys]),
                   np.stack([pending[k][2] for k in keys]))
        for j, k in enumerate(keys):
            try:
                pending[k] = fills[k].send(out[j])
            except StopIteration:
                del pending[k]


def consensus(a: np.ndarray, b: np.ndarray, min_size: int = 1) -> np.ndarray:
    """Over-segmentation consensus: two voxels share an object only where both segmentations
    put them in one object (and the piece is connected); pieces under `min_size` go to 0.
    A merger in one segmentation that the other has split is split. Ids 1..n, uint64."""
    if a.shape != b.shape:
        raise ValueError(f"consensus of segmentations of shapes {a.shape} and {b.shape}")
    a64 = a.astype(np.uint64)
    b64 = b.astype(np.uint64)
    both = (a64 << np.uint64(32)) | b64
    both, _ = fastremap.renumber(both, in_place=True)  # 0 stays 0 (outside both)
    cc = cc3d.connected_components(both, connectivity=6, out_dtype=np.uint64)
    if min_size > 1:
        cc = cc3d.dust(cc, threshold=min_size, connectivity=6, in_place=True)
    out, _ = fastremap.renumber(cc, in_place=True)
    return out.astype(np.uint64)


def cut_at_mask(seg: np.ndarray, masked: np.ndarray) -> np.ndarray:
    """`seg` with masked (defect) voxels set to 0 and every object split into its
    face-connected pieces, so that objects the canvas joined only through masked voxels
    come apart. Ids 1..n, uint64."""
    if masked.shape != seg.shape:
        raise ValueError(f"mask of shape {masked.shape} for a segmentation of {seg.shape}")
    kept = np.where(masked, 0, seg).astype(np.uint64)
    cc = cc3d.connected_components(kept, connectivity=6, out_dtype=np.uint64)
    out, _ = fastremap.renumber(cc, in_place=True)
    return out.astype(np.uint64)


def boundary_of_affinities(affs: np.ndarray) -> np.ndarray:
    """A boundary map in [0, 1] from affinities (3, z, y, x): one minus the lowest affinity
    of a voxel to its six neighbours."""
    low = affs.min(axis=0)
    for c in range(3):
        nxt = np.ones_like(low)
        sl_hi = [slice(None)] * 3
        sl_lo = [slice(None)] * 3
        sl_hi[c], sl_lo[c] = slice(1, None), slice(None, -1)
        nxt[tuple(sl_lo)] = affs[c][tuple(sl_hi)]
        low = np.minimum(low, nxt)
    return np.clip(1.0 - low, 0.0, 1.0).astype(np.float32)


def segment(image: np.ndarray, boundary: np.ndarray, predictor: Predictor,
            voxel_size_zyx: Sequence[float], params: FFNParams = FFNParams(),
            fov: Sequence[int] = FOV, delta: Sequence[int] = DELTA,
            orders: int = 2) -> tuple[np.ndarray, dict[str, float]]:
    """The FFN's segmentation (ids 1..n, uint64): flood filling from the seeds deepest first
    and, with `orders=2`, again shallowest first, joined by `consensus`. Also counts."""
    if image.shape != boundary.shape:
        raise ValueError(f"image {image.shape} and boundary map {boundary.shape} differ in shape")
    if orders not in (1, 2):
        raise ValueError(f"orders must be 1 or 2, got {orders}")
    params.check()
    found = seeds(boundary, voxel_size_zyx, params)
    canvases = [Canvas(image, predictor, params, fov, delta) for _ in range(orders)]
    many = getattr(predictor, "many", None)
    if many is None:
        for k, canvas in enumerate(canvases):
            canvas.run(found if k == 0 else found[::-1])
    else:
        run_together([c.fills(found if k == 0 else found[::-1])
                      for k, c in enumerate(canvases)], many)
    segs = [c.segmentation() for c in canvases]
    steps = sum(c.steps for c in canvases)
    if orders == 1:
        out, _ = fastremap.renumber(segs[0].astype(np.uint64), in_place=True)
        seg = out.astype(np.uint64)
    else:
        seg = consensus(segs[0], segs[1], params.min_size)
    return seg, {"seeds": float(len(found)), "fov_predictions": float(steps)}
