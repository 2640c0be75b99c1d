"""Packing: neurites of different cells pushed apart until they only touch, as in tissue.

Without it labels go to the nearest stamp and a thin process crossing a thicker one keeps only a
sliver a voxel or two wide that no EM image would show, where a tissue process keeps its calibre.
"""

from __future__ import annotations

import numpy as np

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
    """
    from scipy.spatial import cKDTree

    pos = pos.copy()
    w = radius**3
    top = np.sort(radius)[-2:] if len(radius) > 1 else radius
    reach = PACK * float(top.sum())
    child = np.nonzero(parent >= 0)[0]
    par = parent[child]
    deg = np.bincount(child, minlength=len(pos)) + np.bincount(par, minlength=len(pos))
    smooth = movable & ~rigid & (deg > 0)
    has_parent = (parent >= 0) & ~rigid
    slack = 60.0  # candidate pairs are found this far beyond reach, and kept while
    drift = np.inf  # no stamp has moved half of it since
    for _ in range(rounds):
        if drift > slack / 2:
            pairs = cKDTree(pos).query_pairs(reach + slack, output_type="ndarray")
            ci, cj = pairs[:, 0], pairs[:, 1]
            gap = np.linalg.norm(pos[cj] - pos[ci], axis=1) - PACK * (radius[ci] + radius[cj])
            sel = (label[ci] != label[cj]) & (movable[ci] | movable[cj]) & (gap < slack)
            ci, cj = ci[sel], cj[sel]
            drift = 0.0
        d = pos[cj] - pos[ci]
        dist = np.linalg.norm(d, axis=1)
        over = PACK * (radius[ci] + radius[cj]) - dist
        sel = over > 1.0
        if not sel.any():
            break
        i, j, d, dist, over = ci[sel], cj[sel], d[sel], dist[sel], over[sel]
        u = d / np.maximum(dist, 1e-6)[:, None]
        wi, wj = w[i], w[j]
        share_i = np.where(movable[i], np.where(movable[j], wj / (wi + wj), 1.0), 0.0)
        share_j = np.where(movable[j], np.where(movable[i], wi / (wi + wj), 1.0), 0.0)
        ij = np.concatenate([i, j])
        push = np.concatenate([-u * (over * share_i)[:, None], u * (over * share_j)[:, None]])
        n = np.bincount(ij, np.concatenate([share_i, share_j]) > 0, len(pos))
        move = _sum_at(ij, push, len(pos)) / np.maximum(n, 1)[:, None]
        # a push along a neurite's own axis separates nothing and would tear it apart
        tan = np.zeros_like(pos)
        tan[has_parent] = pos[has_parent] - pos[parent[has_parent]]
        tan /= np.maximum(np.linalg.norm(tan, axis=1), 1e-6)[:, None]
        move -= (move * tan).sum(axis=1)[:, None] * tan
        ends = np.concatenate([child, par])
        for _s in range(3):
            nb = _sum_at(ends, np.concatenate([move[par], move[child]]), len(pos)) / \
                np.maximum(deg, 1)[:, None]
            move = np.where(smooth[:, None], 0.5 * move + 0.5 * nb, move)
        pos[movable] += move[movable]
        drift += float(np.abs(move[movable]).max(initial=0.0)) * np.sqrt(3)
    return pos


def _sum_at(index: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """(n, 3) sums of the rows of `values` (k, 3) by `index` (k,)."""
    return np.stack([np.bincount(index, values[:, c], n) for c in range(3)], axis=1)

