"""Packing: neurites of different cells pushed apart until they only touch, as in tissue.

Without it labels go to the nearest stamp and a thin process crossing a thicker one keeps only a
sliver a voxel or two wide that no EM image would show, where a tissue process keeps its calibre.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.spatial import cKDTree

# stamps of different cells end at least this share of their radii apart
PACK = 0.8
_RELAX_ROUNDS = 150
_SLACK_NM = 60.0  # candidate pairs are found this far beyond reach, and kept while neither
# stamp has moved half of it since; a stamp that has is searched again
_SEARCH_SHARE = 20000  # stamps searched at a time when all are


def relax(pos: np.ndarray, radius: np.ndarray, label: np.ndarray, parent: np.ndarray,
          movable: np.ndarray, rigid: np.ndarray, rounds: int = _RELAX_ROUNDS) -> np.ndarray:
    """Stamp centres moved so that stamps of different cells sit at least
    `PACK * (r_i + r_j)` apart, as neurites in tissue bend around each other instead of
    passing through.

    Each round moves every overlapping pair apart along the line of centres, the heavier
    stamp (radius cubed) less, averaged over a stamp's overlaps and across the stamp's
    neurite (never along it); the moves are then
    smoothed along each neurite (parent/child stamps) so that a push bends the neurite
    rather than kinking it. `rigid` stamps (somata) are not smoothed with their neurites.
    Stamps not `movable` stay where they are. Deterministic; no randomness.

    A round costs what the stamps still overlapping cost, not the volume: only pairs with a
    stamp that moved are measured again, only stamps within the smoothing's reach of a push
    are moved (indexed among themselves), and only stamps that drifted are searched for new
    neighbours (`_Index`: the k-d tree of all stamps is built again only when many have
    drifted far from where it placed them).
    """
    pos = pos.copy()
    w = radius**3
    top = np.sort(radius)[-2:] if len(radius) > 1 else radius
    reach = PACK * float(top.sum()) + _SLACK_NM
    child = np.nonzero(parent >= 0)[0]
    par = parent[child]
    deg = np.bincount(child, minlength=len(pos)) + np.bincount(par, minlength=len(pos))
    smooth = movable & ~rigid & (deg > 0)
    has_parent = (parent >= 0) & ~rigid
    adj = _adjacency(child, par, len(pos))
    index = _Index(pos)
    drift = np.zeros(len(pos))  # since each stamp was last searched
    stale = np.arange(len(pos))
    last = np.zeros(0, np.int64)  # the stamps moved last round
    pairs = _Pairs(len(pos))
    for _ in range(rounds):
        # only pairs new or with a stamp that moved last round can have changed
        if len(stale):
            a, b = _candidates(index, pairs, pos, radius, label, movable, stale, reach)
            new = pairs.add(a, b)  # may renumber the pairs
            k = _union(pairs.of(last), new)
            drift[stale] = 0.0
        else:
            k = pairs.of(last)
        pairs.measure(k, PACK * (radius[pairs.i[k]] + radius[pairs.j[k]])
                      - np.linalg.norm(pos[pairs.j[k]] - pos[pairs.i[k]], axis=1))
        hot = pairs.hot
        if not len(hot):
            break
        near, move = _round_moves(pos, w, movable, smooth, has_parent, parent, deg, adj,
                                  pairs.i[hot], pairs.j[hot], pairs.over[hot])
        mv = movable[near]
        last = near[mv]
        pos[last] += move[mv]
        step = np.linalg.norm(move[mv], axis=1)
        drift[last] += step
        index.drifted(last, step)
        stale = last[drift[last] > _SLACK_NM / 2]
    return pos


def _round_moves(pos: np.ndarray, w: np.ndarray, movable: np.ndarray, smooth: np.ndarray,
                 has_parent: np.ndarray, parent: np.ndarray, deg: np.ndarray,
                 adj: sparse.csr_matrix, i: np.ndarray, j: np.ndarray, ov: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(stamps a round moves, their moves) for the overlapping pairs `i, j` (overlaps `ov`):
    the pushes, averaged per stamp, less their part along the neurite, smoothed along it."""
    d = pos[j] - pos[i]
    dist = np.linalg.norm(d, axis=1)
    u = d / np.maximum(dist, 1e-6)[:, None]
    wi, wj = w[i], w[j]
    share_i = np.where(movable[i], np.where(movable[j], wj / (wi + wj), 1.0), 0.0)
    share_j = np.where(movable[j], np.where(movable[i], wi / (wi + wj), 1.0), 0.0)
    ij = np.concatenate([i, j])
    # the smoothing below spreads a push at most 3 stamps along a neurite
    near = _within_hops(adj, _union(ij), 3)
    at = np.searchsorted(near, ij)
    push = np.concatenate([-u * (ov * share_i)[:, None], u * (ov * share_j)[:, None]])
    n = np.bincount(at, np.concatenate([share_i, share_j]) > 0, len(near))
    move = _sum_at(at, push, len(near)) / np.maximum(n, 1)[:, None]
    # a push along a neurite's own axis separates nothing and would tear it apart
    hp = np.nonzero(has_parent[near])[0]
    tan = pos[near[hp]] - pos[parent[near[hp]]]
    tan /= np.maximum(np.linalg.norm(tan, axis=1), 1e-6)[:, None]
    move[hp] -= (move[hp] * tan).sum(axis=1)[:, None] * tan
    rows, cols = _local_links(adj, near)
    sm = np.nonzero(smooth[near])[0]
    dsm = np.maximum(deg[near[sm]], 1)[:, None]
    for _s in range(3):
        nb = _sum_at(rows, move[cols], len(near))[sm] / dsm
        move[sm] = 0.5 * move[sm] + 0.5 * nb
    return near, move


class _Index:
    """Stamps near a place: a k-d tree of all stamps where they stood when it was built, and
    one of the few that have drifted far from there since (built again at each search).

    A stamp within `r` of a place now was within `r + _FAR` of it in the big tree unless it
    has moved more than `_FAR` since; the big tree is built again once an eighth of the
    stamps have."""

    _FAR = _SLACK_NM / 2

    def __init__(self, pos: np.ndarray) -> None:
        self.build(pos)

    def build(self, pos: np.ndarray) -> None:
        self.tree = cKDTree(pos)
        self.since = np.zeros(len(pos))
        self.far = np.zeros(0, np.int64)

    def drifted(self, stamps: np.ndarray, step: np.ndarray) -> None:
        """`stamps` moved by `step` (nm)."""
        before = self.since[stamps] <= self._FAR
        self.since[stamps] += step
        self.far = np.concatenate([self.far, stamps[before & (self.since[stamps] > self._FAR)]])

    def around(self, pos: np.ndarray, at: np.ndarray, r: float) -> tuple[np.ndarray, np.ndarray]:
        """(a, b): every stamp b within `r` of the stamp a, for each a in `at` (and some
        farther)."""
        if len(self.far) > len(pos) // 8:
            self.build(pos)
        found = self.tree.query_ball_point(pos[at], r + self._FAR)
        a = np.repeat(at, np.fromiter((len(f) for f in found), np.int64, len(at)))
        b = np.concatenate([np.asarray(f, np.int64) for f in found]) if len(at) else a
        keep = self.since[b] <= self._FAR
        a, b = a[keep], b[keep]
        if len(self.far):
            far = np.sort(self.far)
            found = cKDTree(pos[far]).query_ball_point(pos[at], r)
            fa = np.repeat(at, np.fromiter((len(f) for f in found), np.int64, len(at)))
            fb = far[np.concatenate([np.asarray(f, np.int64) for f in found])]
            a, b = np.concatenate([a, fa]), np.concatenate([b, fb])
        return a, b


def _candidates(index: _Index, pairs: _Pairs, pos: np.ndarray, radius: np.ndarray,
                label: np.ndarray, movable: np.ndarray, stale: np.ndarray,
                reach: float) -> tuple[np.ndarray, np.ndarray]:
    """New pairs of stamps of different cells, one movable, less than `_SLACK_NM` from
    touching, for the `stale` stamps searched anew (their old pairs dropped from `pairs`)."""
    if len(stale) > len(pos) // 4:  # search all again, a share at a time (bounded memory)
        index.build(pos)
        pairs.clear()
        parts = []
        for at in np.array_split(np.arange(len(pos)), len(pos) // _SEARCH_SHARE + 1):
            a, b = index.around(pos, at, reach)
            parts.append(_near_pairs(pos, radius, label, movable, a[a < b], b[a < b]))
        return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    is_stale = np.zeros(len(pos), bool)
    is_stale[stale] = True
    pairs.drop(stale)
    a, b = index.around(pos, stale, reach)
    one = (a < b) | ~is_stale[b]  # a pair of two stale stamps is found from both; keep it once
    return _near_pairs(pos, radius, label, movable, np.minimum(a[one], b[one]),
                       np.maximum(a[one], b[one]))


class _Pairs:
    """The candidate pairs (i, j) and their overlaps, with where each stamp's pairs are:
    pairs are added at the end and dropped in place, so their order is that of a list kept
    by appending and filtering; an index by stamp (sorted ends) covers the first `indexed`
    pairs, and those added since are looked through directly until they are a 64th."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.clear()

    def clear(self) -> None:
        self._store(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), 0)
        self.hot = np.zeros(0, np.int64)  # alive pairs overlapping by more than 1 nm
        self._reindex()

    def _store(self, i: np.ndarray, j: np.ndarray, over: np.ndarray, spare: int) -> None:
        """Hold these pairs (all alive) with room for `spare` more."""
        size = len(i)
        self._i = np.concatenate([i, np.zeros(spare, np.int64)])
        self._j = np.concatenate([j, np.zeros(spare, np.int64)])
        self._over = np.concatenate([over, np.zeros(spare)])
        self._alive = np.concatenate([np.ones(size, bool), np.zeros(spare, bool)])
        self._view(size)

    def _view(self, size: int) -> None:
        self.i, self.j = self._i[:size], self._j[:size]
        self.over, self.alive = self._over[:size], self._alive[:size]

    def _reindex(self) -> None:
        """Drop dead pairs for good and index the rest by stamp."""
        keep = self.alive
        if not keep.all():
            remap = np.cumsum(keep) - 1
            self.hot = remap[self.hot[keep[self.hot]]]
            self._store(self.i[keep], self.j[keep], self.over[keep], len(self._i) - len(self.i))
        ends = np.concatenate([self.i, self.j])
        order = np.argsort(ends, kind="stable")
        self.order = order % max(len(self.i), 1)
        self.start = np.searchsorted(ends[order], np.arange(self.n + 1))
        self.indexed = len(self.i)

    def of(self, stamps: np.ndarray) -> np.ndarray:
        """Sorted alive pairs with an end in the sorted `stamps`."""
        lo, hi = self.start[stamps], self.start[stamps + 1]
        lens = hi - lo
        at = np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens - lo, lens)
        k = self.order[at]
        if self.indexed < len(self.i):
            ti, tj = self.i[self.indexed:], self.j[self.indexed:]
            tail = np.nonzero(_member(ti, stamps) | _member(tj, stamps))[0]
            k = np.concatenate([k, tail + self.indexed])
        k = _union(k)
        return k[self.alive[k]]

    def drop(self, stamps: np.ndarray) -> None:
        k = self.of(stamps)
        self.alive[k] = False
        self.hot = self.hot[self.alive[self.hot]]

    def add(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Append pairs (i, j); their positions."""
        if len(self.i) - self.indexed > self.indexed // 8 + 4096:
            self._reindex()
        size = len(self.i)
        if size + len(i) > len(self._i):
            alive = self.alive
            self._store(self.i, self.j, self.over, size + 2 * len(i))
            self._alive[:size] = alive
        self._i[size:size + len(i)] = i
        self._j[size:size + len(i)] = j
        self._over[size:size + len(i)] = -np.inf
        self._alive[size:size + len(i)] = True
        self._view(size + len(i))
        if self.indexed == 0:
            self._reindex()
        return np.arange(size, size + len(i))

    def measure(self, k: np.ndarray, over: np.ndarray) -> None:
        """New overlaps `over` of the alive pairs `k`."""
        self.over[k] = over
        kept = self.hot[~_member(self.hot, k)]
        self.hot = _union(kept, k[over > 1.0])


def _near_pairs(pos: np.ndarray, radius: np.ndarray, label: np.ndarray, movable: np.ndarray,
                ci: np.ndarray, cj: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Of the pairs `ci, cj`, those of different cells, one movable, less than `_SLACK_NM`
    from touching."""
    gap = np.linalg.norm(pos[cj] - pos[ci], axis=1) - PACK * (radius[ci] + radius[cj])
    sel = (label[ci] != label[cj]) & (movable[ci] | movable[cj]) & (gap < _SLACK_NM)
    return ci[sel], cj[sel]


def _adjacency(child: np.ndarray, par: np.ndarray, n: int) -> sparse.csr_matrix:
    """Parent/child links of the stamps as a symmetric sparse matrix."""
    ones = np.ones(2 * len(child), bool)
    return sparse.csr_matrix((ones, (np.concatenate([child, par]), np.concatenate([par, child]))),
                             shape=(n, n))


def _within_hops(adj: sparse.csr_matrix, seed: np.ndarray, hops: int) -> np.ndarray:
    """Sorted stamps at most `hops` parent/child links from `seed`."""
    out = seed
    for _ in range(hops):
        out = _union(out, adj[out].indices)
    return out


def _local_links(adj: sparse.csr_matrix, near: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parent/child links between the sorted stamps `near`, as positions in `near` (each
    link both ways)."""
    sub = adj[near]
    rows = np.repeat(np.arange(len(near)), np.diff(sub.indptr))
    at = np.minimum(np.searchsorted(near, sub.indices), len(near) - 1)
    inside = near[at] == sub.indices
    return rows[inside], at[inside]


def _union(*parts: np.ndarray) -> np.ndarray:
    """The sorted distinct values of `parts` (np.unique by sorting: several times faster
    than its hashing for these arrays)."""
    x = np.sort(np.concatenate(parts)) if len(parts) > 1 else np.sort(parts[0])
    if len(x) < 2:
        return x
    return x[np.concatenate([[True], x[1:] != x[:-1]])]


def _member(x: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Which of `x` are among the sorted `values`."""
    if not len(values):
        return np.zeros(len(x), bool)
    at = np.minimum(np.searchsorted(values, x), len(values) - 1)
    return values[at] == x


def _sum_at(index: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """(n, 3) sums of the rows of `values` (k, 3) by `index` (k,)."""
    return np.stack([np.bincount(index, values[:, c], n) for c in range(3)], axis=1)
