"""Packing: neurites of different cells touch but keep their calibre."""

from __future__ import annotations

import numpy as np

from connectome_query.reconstruct import synth
from connectome_query.reconstruct.synth.packing import PACK


def _own_share(plan: synth.Plan, labels: np.ndarray) -> np.ndarray:
    """For each stamp whose ball lies inside the volume: the share of the ball's voxels
    that carry the stamp's own cell (1.0 = the neurite keeps its full calibre there)."""
    vs = np.asarray(plan.config.voxel_size_zyx, float)
    out = []
    for (z, y, x, r), lab in zip(plan.stamps.tolist(), plan.stamp_label.tolist(),
                                 strict=True):
        c = np.array([z, y, x])
        lo = np.floor((c - r) / vs).astype(int)
        hi = np.ceil((c + r) / vs).astype(int) + 1
        if np.any(lo < 0) or np.any(hi > labels.shape):
            continue
        g = np.meshgrid(*[np.arange(lo[k], hi[k]) * vs[k] - c[k] for k in range(3)],
                        indexing="ij")
        ball = g[0] ** 2 + g[1] ** 2 + g[2] ** 2 <= r * r
        sub = labels[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        out.append(float((sub[ball] == lab).mean()))
    return np.array(out)


def test_neurites_keep_their_calibre() -> None:
    """Neurites of different cells bend around each other instead of passing through:
    nearly every skeleton node's ball is its own cell's (before packing, 1% of nodes kept
    under 45% of their ball, slivers no EM image shows)."""
    for seed in (2, 5):
        plan = synth.make_plan(synth.SynthConfig((48, 96, 96), seed=seed))
        share = _own_share(plan, synth.render(plan).labels)
        assert len(share) > 500
        assert np.quantile(share, 0.01) >= 0.75, seed
        assert share.min() >= 0.4, seed


def test_relax_separates_cells_and_keeps_pinned_stamps() -> None:
    """Two crossing neurites of different cells end `_PACK` apart; a pinned stamp stays;
    stamps of one cell may overlap each other freely."""
    from scipy.spatial.distance import cdist

    t = np.linspace(-500, 500, 41)
    a = np.stack([np.zeros_like(t), t, np.zeros_like(t)], axis=1)  # along y
    b = np.stack([np.full_like(t, 30.0), np.full_like(t, 10.0), t], axis=1)  # along x
    pos = np.concatenate([a, b])
    radius = np.full(len(pos), 80.0)
    label = np.repeat([1, 2], len(t))
    parent = np.concatenate([np.arange(-1, len(t) - 1), np.arange(len(t) - 1, 2 * len(t) - 1)])
    parent[len(t)] = -1
    movable = np.ones(len(pos), bool)
    movable[0] = False
    out = synth.relax(pos, radius, label, parent, movable, np.zeros(len(pos), bool),
                      rounds=200)
    gap = cdist(out[label == 1], out[label == 2]).min()
    assert gap >= PACK * 160.0 - 2.0
    assert np.array_equal(out[0], pos[0])
    # the push bends each neurite smoothly: consecutive stamps stay close
    steps = np.linalg.norm(np.diff(out[:len(t)], axis=0), axis=1)
    assert steps.max() < 60.0


def _relax_all_pairs(pos: np.ndarray, radius: np.ndarray, label: np.ndarray,
                     parent: np.ndarray, movable: np.ndarray, rigid: np.ndarray,
                     rounds: int = 150) -> np.ndarray:
    """The packing rule of `relax` written plainly: every round looks at every pair of
    stamps and moves every stamp."""
    from scipy.spatial.distance import cdist

    pos = pos.copy()
    n = len(pos)
    w = radius**3
    child = np.nonzero(parent >= 0)[0]
    par = parent[child]
    deg = np.bincount(child, minlength=n) + np.bincount(par, minlength=n)
    smooth = movable & ~rigid & (deg > 0)
    has_parent = (parent >= 0) & ~rigid
    other = (label[:, None] != label[None, :]) & (movable[:, None] | movable[None, :])
    iu = np.triu(np.ones((n, n), bool), 1)
    for _ in range(rounds):
        over = PACK * (radius[:, None] + radius[None, :]) - cdist(pos, pos)
        i, j = np.nonzero(other & iu & (over > 1.0))
        if len(i) == 0:
            break
        d = pos[j] - pos[i]
        u = d / np.maximum(np.linalg.norm(d, axis=1), 1e-6)[:, None]
        s_i = np.where(movable[i], np.where(movable[j], w[j] / (w[i] + w[j]), 1.0), 0.0)
        s_j = np.where(movable[j], np.where(movable[i], w[i] / (w[i] + w[j]), 1.0), 0.0)
        move = np.zeros_like(pos)
        count = np.zeros(n)
        np.add.at(move, i, -u * (over[i, j] * s_i)[:, None])
        np.add.at(move, j, u * (over[i, j] * s_j)[:, None])
        np.add.at(count, i, s_i > 0)
        np.add.at(count, j, s_j > 0)
        move /= np.maximum(count, 1)[:, None]
        tan = np.zeros_like(pos)
        tan[has_parent] = pos[has_parent] - pos[parent[has_parent]]
        tan /= np.maximum(np.linalg.norm(tan, axis=1), 1e-6)[:, None]
        move -= (move * tan).sum(axis=1)[:, None] * tan
        for _s in range(3):
            nb = np.zeros_like(pos)
            np.add.at(nb, child, move[par])
            np.add.at(nb, par, move[child])
            move = np.where(smooth[:, None], 0.5 * move + 0.5 * nb / np.maximum(deg, 1)[:, None],
                            move)
        pos[movable] += move[movable]
    return pos


def test_relax_on_planned_cells_matches_every_pair_every_stamp() -> None:
    """`relax` looks only at the pairs and stamps near those that moved; on the somata and
    neurites of a planned volume (pinned stamps included) it ends where the plain rule that
    looks at every pair and moves every stamp ends, to rounding."""
    from connectome_query.reconstruct.synth.plan import _Planner
    from connectome_query.schema.vocabulary import Compartment

    pl = _Planner(synth.SynthConfig((32, 96, 96), seed=3))
    pl.place_somata()
    pts = np.array(pl.b.pts, float)
    args = (pts[:, :3], pts[:, 3], np.array(pl.b.label), np.array(pl.b.parent))
    movable = np.ones(len(pts), bool)
    movable[:: 97] = False
    rigid = np.array(pl.b.comp) == Compartment.SOMA
    before_over = _overlapping(pts[:, :3], pts[:, 3], args[2])
    got = synth.relax(*args, movable, rigid)
    want = _relax_all_pairs(*args, movable, rigid)
    assert len(pts) > 1000 and before_over > 50
    assert np.abs(got - want).max() < 1e-6
    assert _overlapping(got, pts[:, 3], args[2]) < before_over / 10


def _overlapping(pos: np.ndarray, radius: np.ndarray, label: np.ndarray) -> int:
    """Pairs of stamps of different cells overlapping by more than 1 nm beyond `PACK`."""
    from scipy.spatial.distance import cdist

    over = PACK * (radius[:, None] + radius[None, :]) - cdist(pos, pos)
    return int(np.triu((label[:, None] != label[None, :]) & (over > 1.0), 1).sum())
