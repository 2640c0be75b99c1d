"""Synapse detection and partner assignment (pure logic, no I/O).

Clefts are connected components (cc3d, 26-connected) of the thresholded cleft probability. The
partners of a cleft are the segment pairs that touch each other inside it (one cleft component can
hold several synapses; each voxel goes to the nearest contact), and the presynaptic side is the
darker one: a bouton holds a dense vesicle cloud right behind the cleft. Clefts cut by the volume's
edge are kept from fewer voxels; a long cleft is split where it narrows to a neck (boutons of a
multi-synaptic run). `find` also works on a block's region of a volume: each cleft is kept by the
block its box starts in, and seen whole with its context there, so the blocks' synapses together
are the whole volume's (in its order: `table`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cc3d
import numpy as np
import pandas as pd
import scipy.ndimage as ndi

from connectome_query.reconstruct import sections
from connectome_query.reconstruct.lattice import neighbour_slices

COLUMNS = ["pre_segment_id", "post_segment_id", "x", "y", "z", "size_voxels", "confidence"]


def contact_pairs(comp: np.ndarray, seg: np.ndarray) -> dict[tuple[int, int], int]:
    """Face-adjacent voxel pairs of different non-zero segments, both inside `comp`:
    (smaller id, larger id) -> number of such voxel pairs."""
    out: dict[tuple[int, int], int] = {}
    for ax in range(3):
        lo, hi = neighbour_slices(ax)
        a, b = seg[lo], seg[hi]
        m = comp[lo] & comp[hi] & (a != b) & (a != 0) & (b != 0)
        if not m.any():
            continue
        pa, pb = a[m].astype(np.int64), b[m].astype(np.int64)
        keys = np.stack([np.minimum(pa, pb), np.maximum(pa, pb)], axis=1)
        uk, cnt = np.unique(keys, axis=0, return_counts=True)
        for (x, y), n in zip(uk.tolist(), cnt.tolist(), strict=True):
            out[(x, y)] = out.get((x, y), 0) + n
    return out


def _interface(comp: np.ndarray, seg: np.ndarray, a: int, b: int) -> np.ndarray:
    """Voxels of `comp` labelled a or b with a face neighbour of the other label in `comp`."""
    out = np.zeros(comp.shape, bool)
    for ax in range(3):
        lo, hi = neighbour_slices(ax)
        s0, s1 = seg[lo], seg[hi]
        m = comp[lo] & comp[hi] & (((s0 == a) & (s1 == b)) | ((s0 == b) & (s1 == a)))
        out[lo] |= m
        out[hi] |= m
    return out


def split_by_pair(comp: np.ndarray, seg: np.ndarray, vs: np.ndarray, min_contact: int,
                  min_share: float) -> list[tuple[int, int, np.ndarray]]:
    """Partner pairs of one cleft component and the component voxels of each.

    Pairs touching inside the component with at least `min_contact` voxel faces and at
    least `min_share` of the largest pair's contact are kept; each voxel of the component
    goes to the kept pair, among those holding its segment, whose interface is nearest.
    """
    pairs = contact_pairs(comp, seg)
    if not pairs:
        return []
    top = max(pairs.values())
    kept = [p for p, n in sorted(pairs.items(), key=lambda kv: -kv[1])
            if n >= min_contact and n >= min_share * top]
    if len(kept) <= 1:
        return [(a, b, comp & ((seg == a) | (seg == b))) for a, b in kept]
    dist = np.stack([ndi.distance_transform_edt(~_interface(comp, seg, a, b), sampling=vs)
                     for a, b in kept])
    for k, (a, b) in enumerate(kept):
        dist[k][~((seg == a) | (seg == b))] = np.inf
    best = np.argmin(dist, axis=0)
    ok = np.isfinite(np.min(dist, axis=0)) & comp
    return [(a, b, ok & (best == k)) for k, (a, b) in enumerate(kept)]


def split_long(vox: np.ndarray, vs: np.ndarray, max_cleft_nm: float,
               neck: float = 0.5) -> list[np.ndarray]:
    """Split a cleft longer than `max_cleft_nm` at a neck.

    Neighbouring boutons of one axon onto one cell (a multi-synaptic run) make clefts
    that touch end to end. Along the principal axis of the voxels, the voxel count per
    slab dips where two clefts meet; a piece is cut at the deepest dip of its middle
    half when that dip holds at most `neck` of the smaller peak on either side,
    recursively. A long cleft without a neck stays whole.
    """
    pts = np.argwhere(vox) * vs
    if len(pts) < 4:
        return [vox]
    ctr = pts - pts.mean(axis=0)
    axis = np.linalg.svd(ctr, full_matrices=False)[2][0]
    t = ctr @ axis
    if float(t.max() - t.min()) <= max_cleft_nm:
        return [vox]
    step = float(vs[1:].min())
    bins = np.floor((t - t.min()) / step).astype(int)
    prof = np.convolve(np.bincount(bins).astype(float), np.ones(3) / 3, mode="same")
    lo_b, hi_b = len(prof) // 4, len(prof) - len(prof) // 4
    if hi_b - lo_b < 1:
        return [vox]
    mid = (len(prof) - 1) / 2
    cand = np.arange(lo_b, hi_b)
    cut = int(cand[np.lexsort((np.abs(cand - mid), prof[cand]))[0]])
    if prof[cut] > neck * min(prof[:cut + 1].max(), prof[cut:].max()):
        return [vox]
    idx = np.argwhere(vox)
    left = np.zeros_like(vox)
    right = np.zeros_like(vox)
    sel = bins <= cut
    left[tuple(idx[sel].T)] = True
    right[tuple(idx[~sel].T)] = True
    return split_long(left, vs, max_cleft_nm, neck) + split_long(right, vs, max_cleft_nm, neck)


def fill_cleft_labels(comp: np.ndarray, seg: np.ndarray, vs: np.ndarray,
                      gap_nm: float) -> np.ndarray:
    """`seg` with unlabelled voxels of `comp` given the nearest segment within `gap_nm`.

    A predicted segmentation often leaves the dark cleft and membranes between two cells
    unlabelled; the cells then touch only across that gap, not face to face.
    """
    hole = comp & (seg == 0)
    if not hole.any() or not (seg != 0).any():
        return seg
    dist, idx = ndi.distance_transform_edt(seg == 0, sampling=vs, return_indices=True)
    out = seg.copy()
    fill = hole & (dist <= gap_nm)
    out[fill] = seg[tuple(i[fill] for i in idx)]
    return out


def _inner(m: np.ndarray) -> np.ndarray:
    """Voxels of mask `m` at least about two voxels in-plane from its outline."""
    cross = np.zeros((3, 3, 3), bool)
    cross[1] = ndi.generate_binary_structure(2, 1)
    square = np.zeros((3, 3, 3), bool)
    square[1] = True
    e = ndi.binary_erosion(m, cross, border_value=1)
    return ndi.binary_erosion(e, square, border_value=1)


def side_darkness(img: np.ndarray, seg: np.ndarray, cleft: np.ndarray, label: int,
                  vs: np.ndarray, reach_nm: float, fill_nm: float = 50.0,
                  min_count: int = 8) -> float:
    """Mean normalised intensity on segment `label`'s side of `cleft`, within `reach_nm`
    of it, the side's outline and the cleft left out; NaN when nothing is left.

    The side is the segment with its in-plane concavities up to `fill_nm` across filled
    where unlabelled (a morphological closing): a dense vesicle cloud is dark enough for
    a predicted segmentation to cut it out of the bouton, and the cloud is the evidence.
    Open unlabelled space beside a convex cell is not filled.
    """
    near = ndi.distance_transform_edt(~cleft, sampling=vs) <= reach_nm
    mine = seg == label
    r = max(round(fill_nm / float(vs[1:].min())), 1)
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    disk = (yy**2 + xx**2 <= r * r)[None]
    m = mine | (ndi.binary_closing(np.pad(mine, ((0, 0), (r, r), (r, r))), disk)
                [:, r:-r, r:-r] & (seg == 0))
    sel = near & _inner(m) & ~cleft
    if int(sel.sum()) < min_count:
        sel = near & m & ~cleft
    return float(img[sel].mean()) if sel.any() else float("nan")


def _touches_edge(bbox: tuple[slice, ...], shape: tuple[int, ...],
                  faces: tuple[tuple[bool, bool], ...]) -> bool:
    """Does the box reach a face of the volume? The array's first and last planes along
    each axis are faces of the volume only as `faces` says (a block's inner faces are not)."""
    return any((s.start == 0 and f[0]) or (s.stop == n and f[1])
               for s, n, f in zip(bbox, shape, faces, strict=True))


def _partners(comp: np.ndarray, seg: np.ndarray, vs: np.ndarray, gap_nm: float,
              min_contact: int, min_share: float) -> list[tuple[int, int, np.ndarray]]:
    """Partner pairs of one cleft component and their voxels (`split_by_pair` once the gap
    in the labels is filled); when no pair touches inside it, the two segments with most
    voxels around it, or none."""
    parts = split_by_pair(comp, fill_cleft_labels(comp, seg, vs, gap_nm), vs, min_contact,
                          min_share)
    if parts:
        return parts
    near = ndi.binary_dilation(comp, np.ones((3, 3, 3), bool), iterations=1)
    labs, cnt = np.unique(seg[near], return_counts=True)
    keep = labs != 0
    labs, cnt = labs[keep], cnt[keep]
    if len(labs) < 2:
        return []
    order = np.argsort(-cnt)
    return [(int(labs[order[0]]), int(labs[order[1]]), comp)]


def _orient(img: np.ndarray, seg: np.ndarray, prob: np.ndarray, vox: np.ndarray, a: int,
            b: int, vs: np.ndarray, vesicle_nm: float) -> tuple[int, int, float] | None:
    """(pre, post, confidence) of the cleft voxels `vox` between segments a and b: the
    darker side (the vesicle cloud) is presynaptic; None when a side cannot be judged."""
    da = side_darkness(img, seg, vox, a, vs, vesicle_nm)
    db = side_darkness(img, seg, vox, b, vs, vesicle_nm)
    if np.isnan(da) or np.isnan(db):
        return None
    pre, post = (a, b) if da < db else (b, a)
    contrast = abs(da - db)
    conf = float(np.clip(prob[vox].mean() * (0.5 + 0.5 * np.tanh(contrast / 0.3)), 0, 1))
    return pre, post, conf


class NeedsMoreContext(Exception):
    """A cleft component kept by a block reaches, with its context, past the block's region
    into the volume beyond (`find` with `whole`)."""


@dataclass(frozen=True)
class Params:
    """Knobs of synapse detection. Defaults fit the voxel classifier's and the network's cleft
    probability on 16x16x40 nm data, where a whole cleft has about 30-80 voxels: components
    below `min_voxels` inside the volume are noise, not clefts."""

    threshold: float = 0.7
    min_voxels: int = 20
    min_edge_voxels: int = 8
    vesicle_nm: float = 90.0
    min_contact: int = 3
    min_share: float = 0.45
    max_cleft_nm: float = 220.0
    neck: float = 0.7
    gap_nm: float = 50.0


def context(voxel_size_zyx: tuple[float, float, float],
            p: Params = Params()) -> tuple[int, int, int]:
    """Voxels of context read around a cleft component's box (the vesicle reach)."""
    vs = np.array(voxel_size_zyx, float)
    pad = np.maximum(np.ceil(p.vesicle_nm / vs).astype(int) + 2, 2)
    return int(pad[0]), int(pad[1]), int(pad[2])


def find(cleft_prob: np.ndarray, seg: np.ndarray, normalised: np.ndarray,
         voxel_size_zyx: tuple[float, float, float], p: Params = Params(),
         origin: tuple[int, int, int] = (0, 0, 0),
         volume: tuple[int, int, int] | None = None,
         core: tuple[tuple[int, int, int], tuple[int, int, int]] | None = None,
         whole: bool = False, masked: np.ndarray | None = None) -> np.ndarray:
    """Synapses of an array (a volume, or a block's region of one) as rows (pre, post, x, y,
    z nm, size_voxels, confidence, first, piece), float64 (n, 9).

    `normalised`: the image, each section normalised (`sections`). For a block's region of
    a volume of shape `volume`, `origin` is the region's first voxel in the volume and only
    cleft components whose box starts (its smallest z, y, x) inside `core` (region
    coordinates) are kept, so that each is found once, by one block, seen whole with its
    context when the halo is wide enough. `first` is the flat index in the volume of the
    component's first voxel and `piece` the synapse's rank among the component's: sorting by
    both gives the whole volume's order. With `whole`, a kept component that (with its
    context) reaches a side of the region where the volume goes on raises
    `NeedsMoreContext`. `masked` (bool, the array's shape) marks voxels no cleft may hold
    (defects): their cleft probability counts as 0.
    """
    if cleft_prob.shape != seg.shape or normalised.shape != seg.shape:
        raise ValueError("cleft probability, segmentation and image must share one shape")
    vs = np.array(voxel_size_zyx, float)
    volume = volume or seg.shape
    assert volume is not None
    faces = tuple((o == 0, o + n == v) for o, n, v in zip(origin, seg.shape, volume,
                                                             strict=True))
    above = cleft_prob > p.threshold
    if masked is not None:
        if masked.shape != seg.shape:
            raise ValueError("the defect mask must have the segmentation's shape")
        above &= ~masked
    comps = cc3d.connected_components(above, connectivity=26)
    stats = cc3d.statistics(comps)
    pad = context(voxel_size_zyx, p)
    rows = []
    for cid, bbox in enumerate(stats["bounding_boxes"]):
        if cid == 0 or bbox is None:
            continue
        if core is not None and not all(lo <= s.start < hi for s, lo, hi in
                                        zip(bbox, core[0], core[1], strict=True)):
            continue
        if whole and any((s.start - q < 0 and not f[0]) or (s.stop + q > dim and not f[1])
                         for s, q, dim, f in zip(bbox, pad, seg.shape, faces, strict=True)):
            raise NeedsMoreContext(f"cleft component {cid} at {bbox}")
        n = int(stats["voxel_counts"][cid])
        floor = p.min_edge_voxels if _touches_edge(bbox, seg.shape, faces) else p.min_voxels
        if n < floor:
            continue
        lo = [max(s.start - q, 0) for s, q in zip(bbox, pad, strict=True)]
        hi = [min(s.stop + q, dim) for s, q, dim in zip(bbox, pad, seg.shape, strict=True)]
        sl = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        c = comps[sl] == cid
        at = np.unravel_index(int(np.argmax(c)), c.shape)  # first voxel, raster order
        first = int(np.ravel_multi_index(tuple(int(a + b + o) for a, b, o in
                                               zip(at, lo, origin, strict=True)), volume))
        sg = seg[sl]
        pieces = [(a, b, v) for a, b, vox in _partners(c, sg, vs, p.gap_nm, p.min_contact,
                                                       p.min_share)
                  for v in split_long(vox, vs, p.max_cleft_nm, p.neck)]
        for k, (a, b, vox) in enumerate(pieces):
            size = int(vox.sum())
            if size < floor:
                continue
            found = _orient(normalised[sl], sg, cleft_prob[sl], vox, a, b, vs, p.vesicle_nm)
            if found is None:
                continue
            pre, post, conf = found
            z, y, x = (np.argwhere(vox).mean(axis=0) + (np.array(lo) + np.array(origin))) * vs
            rows.append((pre, post, x, y, z, size, conf, first, k))
    return np.array(rows, np.float64).reshape(-1, 9)


def table(rows: np.ndarray) -> pd.DataFrame:
    """The synapse table of `find`'s rows (of one volume or of all its blocks): in the whole
    volume's order, numbered 1..n."""
    rows = rows[np.lexsort((rows[:, 8], rows[:, 7]))] if len(rows) else rows
    df = pd.DataFrame({"pre_segment_id": rows[:, 0].astype(np.int64),
                       "post_segment_id": rows[:, 1].astype(np.int64),
                       "x": rows[:, 2], "y": rows[:, 3], "z": rows[:, 4],
                       "size_voxels": rows[:, 5].astype(np.int64), "confidence": rows[:, 6]},
                      columns=COLUMNS)
    df.insert(0, "synapse_id", np.arange(1, len(df) + 1, dtype=np.int64))
    return df


def detect(cleft_prob: np.ndarray, seg: np.ndarray, image: np.ndarray,
           voxel_size_zyx: tuple[float, float, float], p: Params = Params()) -> pd.DataFrame:
    """Synapse table of a whole volume: synapse_id, pre/post segment, x, y, z (nm; the
    centroid of the synapse's cleft voxels), size_voxels, confidence."""
    sec = sections.Sections.from_sums(*sections.sums(image), image.shape[1] * image.shape[2])
    return table(find(cleft_prob, seg, sec.normalise(image, 0), voxel_size_zyx, p))
