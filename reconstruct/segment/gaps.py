"""Joining segments across a run of wholly masked sections (missing sections, filled by the
front end): the decision is taken from the good sections either side, never from masked voxels.

For a run of sections z0..z1 masked whole (`masked_runs`), the last good section below (z0 - 1)
and the first good section above (z1 + 1), the faces, are compared: a segment below and one above
are joined when they are each other's best match by 2-D footprint overlap and the overlap covers
at least a fraction of the smaller footprint (`footprint_pairs`). Cells run obliquely, so across
two or three sections their own footprints overlap little: `drifted_pairs` first moves each
face's segments into the gap by their own motion (centroid shift from the section behind the
face, `segment_drift`), half the gap each, then matches at `DRIFT_OVERLAP`. Only the two
sections either side of the run are read. `join` merges the pairs in the final labelling and
numbers the segments 1..N by first voxel again, as `stitch.final_ids` does. Once joined, the
masked sections take a segment only where both faces hold it at the same pixel (`agreed`):
a joined cell is then one connected object, and no masked voxel is labelled from one side.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

GAP_OVERLAP = 0.5
"""Least overlap of two footprints across a gap, unmoved, as a fraction of the smaller one."""

DRIFT_OVERLAP = 0.3
"""Least overlap of two footprints across a gap after moving each by its drift."""

MAX_DRIFT = 12.0
"""Largest move of a segment into the gap (px per axis): a centroid jump from a segment
that branches or ends behind the face is not motion."""

MIN_BEHIND = 5
"""Least pixels of a segment on the section behind the face for its drift to be measured."""


def masked_runs(whole: np.ndarray) -> list[tuple[int, int]]:
    """Runs (z0, z1) of consecutive sections masked whole (`whole[z]`) with a good section
    on both sides (a run at the volume's start or end joins nothing)."""
    w = np.concatenate([[False], np.asarray(whole, bool), [False]])
    edges = np.flatnonzero(np.diff(w.astype(np.int8)))
    runs = [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]
    return [(z0, z1) for z0, z1 in runs if z0 > 0 and z1 < len(whole) - 1]


def agreed(below: np.ndarray, above: np.ndarray) -> np.ndarray:
    """The labels of a masked section between two good ones: each pixel takes the segment
    both `below` and `above` (2-D, same shape) hold there, 0 where they differ."""
    below, above = np.asarray(below), np.asarray(above)
    if below.shape != above.shape:
        raise ValueError(f"gap faces differ in shape: {below.shape} and {above.shape}")
    return np.where(below == above, below, 0)


def footprint_pairs(below: np.ndarray, above: np.ndarray,
                    min_overlap: float = GAP_OVERLAP) -> np.ndarray:
    """Pairs (a, b) (uint64, (k, 2)) of segment a of section `below` and segment b of
    `above` (2-D, same shape, 0 = none) that are each other's best match by overlap and
    overlap on at least `min_overlap` of the smaller footprint."""
    a, b = np.asarray(below).ravel(), np.asarray(above).ravel()
    both = (a != 0) & (b != 0)
    if not both.any():
        return np.zeros((0, 2), np.uint64)
    pairs, overlap = np.unique(np.stack([a[both], b[both]], 1), axis=0, return_counts=True)
    ids_a, area_a = np.unique(a[a != 0], return_counts=True)
    ids_b, area_b = np.unique(b[b != 0], return_counts=True)
    size_a = area_a[np.searchsorted(ids_a, pairs[:, 0])]
    size_b = area_b[np.searchsorted(ids_b, pairs[:, 1])]
    return _mutual(pairs, overlap, size_a, size_b, min_overlap)


def segment_drift(face: np.ndarray, behind: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Each segment of `face` (ids, (k,)) and its motion per section ((k, 2) y, x px): its
    centroid on `face` less its centroid on `behind` (the next section away from the gap),
    zero where it has fewer than `MIN_BEHIND` pixels there or `behind` is None."""
    face = np.asarray(face)
    ids = np.unique(face[face != 0])
    motion = np.zeros((len(ids), 2))
    if behind is not None and len(ids):
        at, _ = _centroids(face, ids)
        was, n = _centroids(np.asarray(behind), ids)
        ok = n >= MIN_BEHIND
        motion[ok] = at[ok] - was[ok]
    return ids, motion


def _centroids(image: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centroid (y, x) and pixel count on `image` of each id of `ids` (sorted, non-zero);
    ids absent from `image` get count 0."""
    flat = image.ravel()
    idx = np.minimum(np.searchsorted(ids, flat), len(ids) - 1)
    hit = ids[idx] == flat
    yy, xx = np.indices(image.shape).reshape(2, -1)
    n = np.bincount(idx[hit], minlength=len(ids))
    sums = np.stack([np.bincount(idx[hit], yy[hit], len(ids)),
                     np.bincount(idx[hit], xx[hit], len(ids))], 1)
    return sums / np.maximum(n, 1)[:, None], n


def _moved(face: np.ndarray, ids: np.ndarray, shift: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """Flat pixel index after the move and segment index (into `ids`) of every pixel of a
    segment of `face` moved by its `shift` (whole px) that stays inside the section."""
    flat = face.ravel()
    on = flat != 0
    seg = np.searchsorted(ids, flat[on])
    yy, xx = np.indices(face.shape).reshape(2, -1)
    y = yy[on] + shift[seg, 0]
    x = xx[on] + shift[seg, 1]
    inside = (y >= 0) & (y < face.shape[0]) & (x >= 0) & (x < face.shape[1])
    return (y * face.shape[1] + x)[inside], seg[inside]


def drifted_pairs(below: tuple[np.ndarray | None, np.ndarray],
                  above: tuple[np.ndarray, np.ndarray | None], span: int,
                  min_overlap: float = DRIFT_OVERLAP) -> np.ndarray:
    """Pairs (a, b) (uint64, (k, 2)) of segments of the face below and the face above a gap
    that match once each is moved into the gap by its own drift (`segment_drift`) times
    half the `span` (sections from face to face), at most `MAX_DRIFT` px: mutual best by
    overlap, on at least `min_overlap` of the smaller moved footprint. `below` is (section
    behind, face), `above` (face, section behind); a section behind is None past the volume."""
    (behind_a, face_a), (face_b, behind_b) = below, above
    face_a, face_b = np.asarray(face_a), np.asarray(face_b)
    if face_a.shape != face_b.shape:
        raise ValueError(f"gap faces differ in shape: {face_a.shape} and {face_b.shape}")
    ids_a, drift_a = segment_drift(face_a, behind_a)
    ids_b, drift_b = segment_drift(face_b, behind_b)
    if not len(ids_a) or not len(ids_b):
        return np.zeros((0, 2), np.uint64)
    pix_a, seg_a = _moved(face_a, ids_a, _whole_px(drift_a * span / 2))
    pix_b, seg_b = _moved(face_b, ids_b, _whole_px(drift_b * span / 2))
    n = face_a.size
    cover_a = coo_matrix((np.ones(len(pix_a)), (seg_a, pix_a)), shape=(len(ids_a), n)).tocsr()
    cover_b = coo_matrix((np.ones(len(pix_b)), (pix_b, seg_b)), shape=(n, len(ids_b))).tocsc()
    over = (cover_a @ cover_b).tocoo()
    if not over.nnz:
        return np.zeros((0, 2), np.uint64)
    order = np.lexsort((over.col, over.row))
    rows, cols = over.row[order], over.col[order]
    overlap = np.rint(over.data[order]).astype(np.int64)
    size_a = np.bincount(seg_a, minlength=len(ids_a))[rows]
    size_b = np.bincount(seg_b, minlength=len(ids_b))[cols]
    pairs = np.stack([ids_a[rows], ids_b[cols]], 1)
    return _mutual(pairs, overlap, size_a, size_b, min_overlap)


def _whole_px(shift: np.ndarray) -> np.ndarray:
    """A move rounded to whole pixels (half away from zero) and clipped to `MAX_DRIFT`."""
    s = np.clip(shift, -MAX_DRIFT, MAX_DRIFT)
    return (np.sign(s) * np.floor(np.abs(s) + 0.5)).astype(np.int64)


def _mutual(pairs: np.ndarray, overlap: np.ndarray, size_a: np.ndarray, size_b: np.ndarray,
            min_overlap: float) -> np.ndarray:
    """The rows of `pairs` (sorted by (a, b)) that are each other's best match by `overlap`
    and overlap on at least `min_overlap` of the smaller size."""
    best_a = _best(pairs[:, 0], overlap)
    best_b = _best(pairs[:, 1], overlap)
    keep = best_a & best_b & (overlap >= min_overlap * np.minimum(size_a, size_b))
    return pairs[keep].astype(np.uint64)


def _best(key: np.ndarray, overlap: np.ndarray) -> np.ndarray:
    """Whether each row holds its key's largest overlap (ties: the first row in order)."""
    order = np.lexsort((-overlap, key))
    first = np.ones(len(order), bool)
    first[1:] = key[order][1:] != key[order][:-1]
    out = np.zeros(len(key), bool)
    out[order[first]] = True
    return out


def join(lut: np.ndarray, sizes: np.ndarray, first: np.ndarray, pairs: np.ndarray
         ) -> np.ndarray:
    """The final id of every fragment (`lut`, 0 for none) after joining the segment pairs
    (uint64, (k, 2)), segments renumbered 1..N by first voxel. `sizes`, `first`: voxels and
    first voxel (flat index) of each fragment."""
    lut = np.asarray(lut, np.int64)
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    if not len(pairs):
        return lut.astype(np.uint64)
    n = int(lut.max()) + 1
    graph = coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])),
                       shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    seg = comp[lut]
    seg_first = np.full(int(comp.max()) + 1, np.iinfo(np.int64).max, np.int64)
    real = (lut != 0) & (np.asarray(sizes) > 0)
    np.minimum.at(seg_first, seg[real], np.asarray(first, np.int64)[real])
    roots = np.flatnonzero(seg_first < np.iinfo(np.int64).max)
    roots = roots[np.argsort(seg_first[roots], kind="stable")]
    new = np.zeros(len(seg_first), np.uint64)
    new[roots] = np.arange(1, len(roots) + 1, dtype=np.uint64)
    out = new[seg]
    out[lut == 0] = 0
    return out
