"""Joining segments across a run of wholly masked sections (missing sections, filled by the
front end): the decision is taken from the good sections either side, never from masked voxels.

For a run of sections z0..z1 masked whole (`masked_runs`), the last good section below (z0 - 1)
and the first good section above (z1 + 1), the faces, are compared piece by piece: a piece is a
segment's 8-connected 2-D part on a face (`pieces`), so a cell whose branches meet off the face
(below it on one side, inside the gap on the other) shows as one piece a branch. Cells run
obliquely, so across two or three sections their footprints overlap little: `drifted_pairs`
moves each piece into the gap by its own motion (its centroid's shift from its continuation on
the section behind the face, averaged with that continuation's own shift from the section after
it where both count, `piece_drift`), half the gap each, then joins the segments of two
pieces that are each other's best match by overlap, covering at least `DRIFT_OVERLAP` of the
smaller (`footprint_pairs`: the same match of whole segments, unmoved) and, where one is more
than `MAX_AREA_RATIO` times the other, `MIN_IOU` of their union, where one of the two
segments, all its pieces' overlaps summed, matches the other best. A segment may so join
several across the gap, one through each branch, and one piece does not pull a segment that
continues elsewhere into another cell. Only three sections either side of the run are read.
`join` merges the pairs in the final labelling and numbers the segments 1..N by first voxel
again, as `stitch.final_ids` does. Once joined, the masked sections take a segment only where
both faces hold it at the same pixel (`agreed`): a joined cell is then one connected object,
and no masked voxel is labelled from one side.
"""

from __future__ import annotations

from collections.abc import Sequence

import cc3d
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

GAP_OVERLAP = 0.5
"""Least overlap of two footprints across a gap, unmoved, as a fraction of the smaller one."""

DRIFT_OVERLAP = 0.3
"""Least overlap of two footprints across a gap after moving each by its drift."""

MAX_DRIFT = 12.0
"""Largest move of a piece into the gap (px per axis)."""

MIN_BEHIND = 5
"""Least overlap (px) of a piece with its continuation on the section behind the face for its
drift to be measured."""

MAX_GROWTH = 2.0
"""Largest ratio of a piece's area to its continuation's behind the face (either way) for its
drift to count: a cell that branches or ends there doubles or halves its cross-section."""

MAX_AREA_RATIO = 3.0
"""Largest ratio of two matched moved pieces' areas for a join on `DRIFT_OVERLAP` alone:
a piece lying inside one many times its size covers most of itself by chance (a branch
ending beside another cell, a fragment)."""

MIN_IOU = 0.25
"""Least overlap of two matched moved pieces, as a fraction of their union, where their
areas differ more than `MAX_AREA_RATIO` times."""


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
    return pairs[_mutual(pairs, overlap, size_a, size_b, min_overlap)].astype(np.uint64)


def pieces(section: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pieces of a section's segments: each segment's 8-connected 2-D parts, numbered
    1..n (`labels`, 0 where no segment), and the segment id of each piece (`segment[k]` for
    piece k, `segment[0]` = 0). A cell that branches outside the section shows as several
    pieces of one segment there."""
    section = np.ascontiguousarray(section)
    labels = cc3d.connected_components(section, connectivity=8).astype(np.int64)
    segment = np.zeros(int(labels.max()) + 1, section.dtype)
    segment[labels.ravel()] = section.ravel()
    return labels, segment


def piece_drift(face: np.ndarray, behind: np.ndarray | None,
                further: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pieces of `face` (`pieces`) and each one's motion per section ((n + 1, 2) y, x px;
    row k for piece k): its centroid less that of the piece of the same segment it overlaps
    most on `behind` (the next section away from the gap). Zero where that overlap is under
    `MIN_BEHIND` pixels, where the two pieces' areas differ by more than `MAX_GROWTH` times
    (the cell branches or ends there: the jump is not motion), or `behind` is None. Where
    `further` (the section after `behind`) is given and that continuation's own motion from
    it counts by the same rules, the mean of the two steps: a centroid's shift over one
    section is noisy, the cell's course over two less so."""
    face = np.asarray(face)
    labels, segment = pieces(face)
    motion = np.zeros((len(segment), 2))
    if behind is None or len(segment) == 1:
        return labels, segment, motion
    behind = np.asarray(behind)
    back, _ = pieces(behind)
    step, valid, there = _drift_step(face, labels, behind, back)
    motion[valid] = step[valid]
    if further is not None and valid.any():
        further = np.asarray(further)
        back_step, back_valid, _ = _drift_step(behind, back, further, pieces(further)[0])
        two = valid & back_valid[there]
        motion[two] = (step[two] + back_step[there[two]]) / 2
    return labels, segment, motion


def _drift_step(face: np.ndarray, labels: np.ndarray, behind: np.ndarray, back: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`piece_drift` over one section, given both sections' pieces (`labels` of `face`,
    `back` of `behind`): each face piece's motion ((n + 1, 2)), whether it counts ((n + 1,)
    bool) and its continuation's label among `back` ((n + 1,) int, 0 for none)."""
    n = int(labels.max())
    motion = np.zeros((n + 1, 2))
    valid = np.zeros(n + 1, bool)
    there = np.zeros(n + 1, np.int64)
    both = (labels > 0) & (face == behind)
    if not both.any():
        return motion, valid, there
    pairs, overlap = np.unique(np.stack([labels[both], back[both]], 1), axis=0,
                               return_counts=True)
    best = _best(pairs[:, 0], overlap)
    here, linked, overlap = pairs[best, 0], pairs[best, 1], overlap[best]
    at, area = _centroids(labels, n + 1)
    was, area_was = _centroids(back, int(back.max()) + 1)
    growth = area[here] / area_was[linked]
    ok = (overlap >= MIN_BEHIND) & (growth <= MAX_GROWTH) & (growth >= 1 / MAX_GROWTH)
    motion[here[ok]] = at[here[ok]] - was[linked[ok]]
    valid[here[ok]] = True
    there[here] = linked
    return motion, valid, there


def _centroids(labels: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Centroid (y, x) ((n, 2)) and pixel count ((n,)) of each label 0..n - 1 of `labels`."""
    flat = labels.ravel()
    yy, xx = np.indices(labels.shape).reshape(2, -1)
    count = np.bincount(flat, minlength=n)
    sums = np.stack([np.bincount(flat, yy, n), np.bincount(flat, xx, n)], 1)
    return sums / np.maximum(count, 1)[:, None], count


def _moved(labels: np.ndarray, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat pixel index after the move and piece index (label - 1) of every pixel of a piece
    of `labels` (numbered 1..n) moved by its row of `shift` ((n, 2) whole px) that stays
    inside the section."""
    flat = labels.ravel()
    on = flat != 0
    piece = flat[on] - 1
    yy, xx = np.indices(labels.shape).reshape(2, -1)
    y = yy[on] + shift[piece, 0]
    x = xx[on] + shift[piece, 1]
    inside = (y >= 0) & (y < labels.shape[0]) & (x >= 0) & (x < labels.shape[1])
    return (y * labels.shape[1] + x)[inside], piece[inside]


def drifted_pairs(below: Sequence[np.ndarray | None], above: Sequence[np.ndarray | None],
                  span: int, min_overlap: float = DRIFT_OVERLAP) -> np.ndarray:
    """Pairs (a, b) (uint64, (k, 2), unique) of segments of the face below and the face above
    a gap with a piece each (`pieces`) that match once each piece is moved into the gap by its
    own drift (`piece_drift`) times half the `span` (sections from face to face), at most
    `MAX_DRIFT` px: mutual best by overlap, on at least `min_overlap` of the smaller moved
    piece, alike in area or overlapping well (`_alike`), where one of the two segments is the
    other's best match by its pieces' overlaps summed (`_either_best`). Pieces, not whole
    segments, are matched: a cell whose branches are one segment on one side and several on
    the other joins through each branch. `below` is the sections up to the face in z order,
    the face last, `above` the face and those after it; one or two sections behind each face
    give its drift (`piece_drift`), None past the volume."""
    face_a, *away_a = _arrays(below[::-1])
    face_b, *away_b = _arrays(above)
    if face_a is None or face_b is None:
        raise ValueError("a gap face is missing")
    if face_a.shape != face_b.shape:
        raise ValueError(f"gap faces differ in shape: {face_a.shape} and {face_b.shape}")
    if not 1 <= len(away_a) <= 2 or not 1 <= len(away_b) <= 2:
        raise ValueError("a gap face needs one or two sections behind it (None past the "
                         "volume)")
    labels_a, segment_a, drift_a = piece_drift(face_a, *away_a)
    labels_b, segment_b, drift_b = piece_drift(face_b, *away_b)
    n_a, n_b = len(segment_a) - 1, len(segment_b) - 1
    if not n_a or not n_b:
        return np.zeros((0, 2), np.uint64)
    pix_a, piece_a = _moved(labels_a, _whole_px(drift_a[1:] * span / 2))
    pix_b, piece_b = _moved(labels_b, _whole_px(drift_b[1:] * span / 2))
    n = face_a.size
    cover_a = coo_matrix((np.ones(len(pix_a)), (piece_a, pix_a)), shape=(n_a, n)).tocsr()
    cover_b = coo_matrix((np.ones(len(pix_b)), (pix_b, piece_b)), shape=(n, n_b)).tocsc()
    over = (cover_a @ cover_b).tocoo()
    if not over.nnz:
        return np.zeros((0, 2), np.uint64)
    order = np.lexsort((over.col, over.row))
    rows, cols = over.row[order], over.col[order]
    overlap = np.rint(over.data[order]).astype(np.int64)
    size_a = np.bincount(piece_a, minlength=n_a)[rows]
    size_b = np.bincount(piece_b, minlength=n_b)[cols]
    matched = _mutual(np.stack([rows, cols], 1), overlap, size_a, size_b, min_overlap)
    segs = np.stack([segment_a[rows + 1], segment_b[cols + 1]], 1).astype(np.uint64)
    ok = matched & _alike(overlap, size_a, size_b) & _either_best(segs, overlap)
    return np.unique(segs[ok].reshape(-1, 2), axis=0)


def _arrays(sections: Sequence[np.ndarray | None]) -> list[np.ndarray | None]:
    return [None if s is None else np.asarray(s) for s in sections]


def _either_best(segs: np.ndarray, overlap: np.ndarray) -> np.ndarray:
    """Whether the two segments of each row of piece pairs (`segs`, (k, 2)) are, by their
    pieces' overlaps summed, the best match of at least one of them: a segment that as a
    whole continues elsewhere is not pulled into another cell by one piece."""
    pairs, row = np.unique(segs, axis=0, return_inverse=True)
    total = np.bincount(row.ravel(), overlap, len(pairs))
    either = _best(pairs[:, 0], total) | _best(pairs[:, 1], total)
    return either[row.ravel()]


def _alike(overlap: np.ndarray, size_a: np.ndarray, size_b: np.ndarray) -> np.ndarray:
    """Whether two pieces (areas `size_a`, `size_b`, overlapping on `overlap` px) are alike
    enough to be one cell: areas within `MAX_AREA_RATIO` times, or overlapping on at least
    `MIN_IOU` of their union."""
    small, large = np.minimum(size_a, size_b), np.maximum(size_a, size_b)
    return (large <= MAX_AREA_RATIO * small) | (overlap >= MIN_IOU * (size_a + size_b - overlap))


def _whole_px(shift: np.ndarray) -> np.ndarray:
    """A move rounded to whole pixels (half away from zero) and clipped to `MAX_DRIFT`."""
    s = np.clip(shift, -MAX_DRIFT, MAX_DRIFT)
    return (np.sign(s) * np.floor(np.abs(s) + 0.5)).astype(np.int64)


def _mutual(pairs: np.ndarray, overlap: np.ndarray, size_a: np.ndarray, size_b: np.ndarray,
            min_overlap: float) -> np.ndarray:
    """Whether each row of `pairs` (sorted by (a, b)) is a pair each other's best match by
    `overlap` that overlaps on at least `min_overlap` of the smaller size."""
    best_a = _best(pairs[:, 0], overlap)
    best_b = _best(pairs[:, 1], overlap)
    return best_a & best_b & (overlap >= min_overlap * np.minimum(size_a, size_b))


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
