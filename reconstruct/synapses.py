"""Synapse detection and partner assignment (pure logic, no I/O).

Clefts are connected components (cc3d, 26-connected) of the thresholded cleft probability. The
partners of a cleft are the segment pairs that touch each other inside it (one cleft component can
hold several synapses; each voxel goes to the nearest contact), and the presynaptic side is the
darker one: a bouton holds a dense vesicle cloud right behind the cleft. Clefts cut by the volume's
edge are kept from fewer voxels; a long cleft is split where it narrows to a neck (boutons of a
multi-synaptic run). `detect_blockwise` goes slab by slab with a halo, each cleft kept by the slab
holding its first section, so each is found once with the same context as in the whole volume.
"""

from __future__ import annotations

from collections.abc import Callable

import cc3d
import numpy as np
import pandas as pd
import scipy.ndimage as ndi

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
                  faces_z: tuple[bool, bool] = (True, True)) -> bool:
    """Does the box reach a face of the volume? The block's first and last sections are
    volume faces only as `faces_z` says (a slab's inner faces are not)."""
    z = bbox[0]
    return ((z.start == 0 and faces_z[0]) or (z.stop == shape[0] and faces_z[1])
            or any(s.start == 0 or s.stop == n for s, n in zip(bbox[1:], shape[1:],
                                                               strict=True)))


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


def detect(cleft_prob: np.ndarray, seg: np.ndarray, image: np.ndarray,
           voxel_size_zyx: tuple[float, float, float], threshold: float = 0.7,
           min_voxels: int = 20, min_edge_voxels: int = 8, vesicle_nm: float = 90.0,
           min_contact: int = 3, min_share: float = 0.45,
           max_cleft_nm: float = 220.0, neck: float = 0.7,
           gap_nm: float = 50.0, z_offset: int = 0,
           faces_z: tuple[bool, bool] = (True, True),
           first_sections: tuple[int, int] | None = None) -> pd.DataFrame:
    """Synapse table: synapse_id, pre/post segment, x, y, z (nm), size_voxels, confidence.

    Defaults fit the voxel classifier's cleft probability on 16x16x40 nm data, where a
    whole cleft has about 30-80 voxels: components below `min_voxels` inside the volume
    are noise, not clefts. Location is the centroid of the synapse's cleft voxels.

    For a block of a bigger volume: `z_offset` is its first section's index in the volume,
    `faces_z` whether its first / last section is a face of the volume, and only cleft
    components whose first section (block index) is in `first_sections` [a, b) are kept.
    """
    if cleft_prob.shape != seg.shape or image.shape != seg.shape:
        raise ValueError("cleft probability, segmentation and image must share one shape")
    vs = np.array(voxel_size_zyx, float)
    mask = cleft_prob > threshold
    comps = cc3d.connected_components(mask, connectivity=26)
    stats = cc3d.statistics(comps)
    img = image.astype(np.float32)
    img = (img - img.mean(axis=(1, 2), keepdims=True)) / \
        np.maximum(img.std(axis=(1, 2), keepdims=True), 1e-3)
    pad = np.maximum(np.ceil(vesicle_nm / vs).astype(int) + 2, 2)
    rows = []
    for cid, bbox in enumerate(stats["bounding_boxes"]):
        if cid == 0 or bbox is None:
            continue
        if first_sections is not None and not \
                first_sections[0] <= bbox[0].start < first_sections[1]:
            continue
        n = int(stats["voxel_counts"][cid])
        floor = min_edge_voxels if _touches_edge(bbox, seg.shape, faces_z) else min_voxels
        if n < floor:
            continue
        lo = [max(s.start - p, 0) for s, p in zip(bbox, pad, strict=True)]
        hi = [min(s.stop + p, dim) for s, p, dim in zip(bbox, pad, seg.shape, strict=True)]
        sl = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        c = comps[sl] == cid
        sg = seg[sl]
        prob = cleft_prob[sl]
        pieces = [(a, b, v) for a, b, vox in _partners(c, sg, vs, gap_nm, min_contact, min_share)
                  for v in split_long(vox, vs, max_cleft_nm, neck)]
        for a, b, vox in pieces:
            k = int(vox.sum())
            if k < floor:
                continue
            found = _orient(img[sl], sg, prob, vox, a, b, vs, vesicle_nm)
            if found is None:
                continue
            pre, post, conf = found
            z, y, x = (np.argwhere(vox).mean(axis=0) + np.array(lo) + [z_offset, 0, 0]) * vs
            rows.append((pre, post, float(x), float(y), float(z), k, conf))
    df = pd.DataFrame(rows, columns=COLUMNS)
    df.insert(0, "synapse_id", np.arange(1, len(df) + 1, dtype=np.int64))
    return df


def detect_blockwise(read: Callable[[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]],
                     n_sections: int, voxel_size_zyx: tuple[float, float, float],
                     slab: int, halo: int = 16, **params: float) -> pd.DataFrame:
    """`detect` over a volume of `n_sections`, `slab` sections at a time.

    `read(z0, z1)` gives (cleft probability, segmentation, image) of sections [z0, z1).
    Each slab is read with `halo` sections either side: a cleft component is kept by the
    slab holding its first section, and seen whole with its context as long as it spans
    under `halo` minus the vesicle reach (5 sections at 40 nm) — clefts span 1-4.
    The result equals `detect` on the whole volume in that case (tested).
    """
    if slab < 1 or halo < 1:
        raise ValueError(f"slab and halo must be at least 1, got {slab}, {halo}")
    parts = []
    for z0 in range(0, n_sections, slab):
        z1 = min(z0 + slab, n_sections)
        h0, h1 = max(z0 - halo, 0), min(z1 + halo, n_sections)
        cleft, seg, img = read(h0, h1)
        part = detect(cleft, seg, img, voxel_size_zyx, z_offset=h0,
                      faces_z=(h0 == 0, h1 == n_sections),
                      first_sections=(z0 - h0, z1 - h0), **params)  # type: ignore[arg-type]
        parts.append(part.drop(columns="synapse_id"))
    found = [p for p in parts if len(p)]
    df = pd.concat(found, ignore_index=True) if found else parts[0]
    df.insert(0, "synapse_id", np.arange(1, len(df) + 1, dtype=np.int64))
    return df
