"""Packing: neurites of different cells pushed apart until they only touch, as in tissue.

Without it labels go to the nearest stamp and a thin process crossing a thicker one keeps only a
sliver a voxel or two wide that no EM image would show, where a tissue process keeps its calibre.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

# stamps of different cells end at least this share of their radii apart
PACK = 0.8
_RELAX_ROUNDS = 150


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
    are moved, and only stamps that drifted are searched for new neighbours (a k-d tree).
    """
    pos = pos.copy()
    w = radius**3
    top = np.sort(radius)[-2:] if len(radius) > 1 else radius
    reach = PACK * float(top.sum())
    child = np.nonzero(parent >= 0)[0]
    par = parent[child]
    deg = np.bincount(child, minlength=len(pos)) + np.bincount(par, minlength=len(pos))
    smooth = movable & ~rigid & (deg > 0)
    has_parent = (parent >= 0) & ~rigid
    adj = _adjacency(child, par, len(pos))
    slack = 60.0  # candidate pairs are found this far beyond reach, and kept while
    # neither stamp has moved half of it since; a stamp that has is searched again
    drift = np.full(len(pos), np.inf)
    moved = np.zeros(len(pos), bool)
    ci = cj = np.zeros(0, np.int64)
    over = np.zeros(0)
    for _ in range(rounds):
        stale = drift > slack / 2
        if stale.any():
            ci, cj = _candidates(pos, radius, label, movable, stale, ci, cj, reach + slack, slack)
            over = PACK * (radius[ci] + radius[cj]) - np.linalg.norm(pos[cj] - pos[ci], axis=1)
            drift[stale] = 0.0
        else:  # only pairs with a stamp that moved last round can have changed
            k = np.nonzero(moved[ci] | moved[cj])[0]
            over[k] = PACK * (radius[ci[k]] + radius[cj[k]]) - \
                np.linalg.norm(pos[cj[k]] - pos[ci[k]], axis=1)
        sel = over > 1.0
        if not sel.any():
            break
        i, j, ov = ci[sel], cj[sel], over[sel]
        d = pos[j] - pos[i]
        dist = np.linalg.norm(d, axis=1)
        u = d / np.maximum(dist, 1e-6)[:, None]
        wi, wj = w[i], w[j]
        share_i = np.where(movable[i], np.where(movable[j], wj / (wi + wj), 1.0), 0.0)
        share_j = np.where(movable[j], np.where(movable[i], wi / (wi + wj), 1.0), 0.0)
        ij = np.concatenate([i, j])
        push = np.concatenate([-u * (ov * share_i)[:, None], u * (ov * share_j)[:, None]])
        n = np.bincount(ij, np.concatenate([share_i, share_j]) > 0, len(pos))
        move = _sum_at(ij, push, len(pos)) / np.maximum(n, 1)[:, None]
        # the smoothing below spreads a push at most 3 stamps along a neurite
        near = _within_hops(adj, np.unique(ij), 3)
        # a push along a neurite's own axis separates nothing and would tear it apart
        hp = near[has_parent[near]]
        tan = pos[hp] - pos[parent[hp]]
        tan /= np.maximum(np.linalg.norm(tan, axis=1), 1e-6)[:, None]
        move[hp] -= (move[hp] * tan).sum(axis=1)[:, None] * tan
        in_near = np.zeros(len(pos), bool)
        in_near[near] = True
        e = np.nonzero(in_near[child] | in_near[par])[0]
        ec, ep = child[e], par[e]
        ends = np.concatenate([ec, ep])
        sm = near[smooth[near]]
        for _s in range(3):
            nb = _sum_at(ends, np.concatenate([move[ep], move[ec]]), len(pos))[sm] / \
                np.maximum(deg[sm], 1)[:, None]
            move[sm] = 0.5 * move[sm] + 0.5 * nb
        mv = near[movable[near]]
        pos[mv] += move[mv]
        moved[:] = False
        moved[mv] = True
        drift[mv] += np.linalg.norm(move[mv], axis=1)
    return pos


def _candidates(pos: np.ndarray, radius: np.ndarray, label: np.ndarray, movable: np.ndarray,
                stale: np.ndarray, ci: np.ndarray, cj: np.ndarray, reach: float,
                slack: float) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of stamps of different cells, one movable, less than `slack` from touching:
    the pairs `ci, cj` kept where neither stamp is `stale`, the stale stamps searched anew."""
    from scipy.spatial import cKDTree

    tree = cKDTree(pos)
    if stale.mean() > 0.25:
        pairs = tree.query_pairs(reach, output_type="ndarray")
        return _near_pairs(pos, radius, label, movable, pairs[:, 0], pairs[:, 1], slack)
    keep = ~(stale[ci] | stale[cj])
    s = np.nonzero(stale)[0]
    found = tree.query_ball_point(pos[s], reach)
    a = np.repeat(s, np.fromiter((len(f) for f in found), np.int64, len(s)))
    b = np.concatenate([np.asarray(f, np.int64) for f in found])
    one = (a < b) | ~stale[b]  # a pair of two stale stamps is found from both; keep it once
    a, b = _near_pairs(pos, radius, label, movable, np.minimum(a[one], b[one]),
                       np.maximum(a[one], b[one]), slack)
    return np.concatenate([ci[keep], a]), np.concatenate([cj[keep], b])


def _near_pairs(pos: np.ndarray, radius: np.ndarray, label: np.ndarray, movable: np.ndarray,
                ci: np.ndarray, cj: np.ndarray, slack: float) -> tuple[np.ndarray, np.ndarray]:
    """Of the pairs `ci, cj`, those of different cells, one movable, less than `slack`
    from touching."""
    gap = np.linalg.norm(pos[cj] - pos[ci], axis=1) - PACK * (radius[ci] + radius[cj])
    sel = (label[ci] != label[cj]) & (movable[ci] | movable[cj]) & (gap < slack)
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
        out = np.union1d(out, adj[out].indices)
    return out


def _sum_at(index: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """(n, 3) sums of the rows of `values` (k, 3) by `index` (k,)."""
    return np.stack([np.bincount(index, values[:, c], n) for c in range(3)], axis=1)

