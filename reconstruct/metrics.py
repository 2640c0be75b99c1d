"""Quality metrics against ground truth (pure logic): ERL/NERL, VOI, ARAND, synapse P/R/F1.

VOI (split = H(pred | gt), merge = H(gt | pred), in bits; CREMI) and ARAND (1 - F-score of Rand
precision and recall; SNEMI3D) are skimage's, ground-truth label 0 ignored. ERL = sum over
skeletons s and segments k of c_sk^2 / L_total, with edges touching background, split between
segments, or inside a merger (a segment holding nodes of two or more skeletons) counting zero;
NERL = ERL / ERL of the ground-truth labels used as the prediction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from skimage.metrics import adapted_rand_error, contingency_table, variation_of_information


def _check_shapes(gt: np.ndarray, pred: np.ndarray) -> None:
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth shape {gt.shape} != prediction shape {pred.shape}")


def contingency(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                           np.ndarray]:
    """Overlap counts (gt label, pred label, voxels) over voxels where gt != 0, sorted by
    (gt label, pred label)."""
    _check_shapes(gt, pred)
    m = gt != 0
    g = gt[m].astype(np.uint64)
    p = pred[m].astype(np.uint64)
    if len(g) == 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64), np.zeros(0, np.int64)
    gu, gi = np.unique(g, return_inverse=True)
    pu, pi = np.unique(p, return_inverse=True)
    key = gi.reshape(-1).astype(np.int64) * len(pu) + pi.reshape(-1)
    uk, cnt = np.unique(key, return_counts=True)
    return gu[uk // len(pu)], pu[uk % len(pu)], cnt.astype(np.int64)


def add_tables(tables: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contingency tables of parts of a volume added into the whole's (sorted as
    `contingency`'s)."""
    g = np.concatenate([np.zeros(0, np.uint64), *(t[0] for t in tables)]).astype(np.uint64)
    p = np.concatenate([np.zeros(0, np.uint64), *(t[1] for t in tables)]).astype(np.uint64)
    n = np.concatenate([np.zeros(0, np.int64), *(t[2] for t in tables)]).astype(np.int64)
    if len(g) == 0:
        return g, p, n
    pairs, inv = np.unique(np.stack([g, p], axis=1), axis=0, return_inverse=True)
    counts = np.bincount(inv.reshape(-1), weights=n, minlength=len(pairs)).astype(np.int64)
    return pairs[:, 0], pairs[:, 1], counts


def voi_of_table(g: np.ndarray, p: np.ndarray, n: np.ndarray) -> tuple[float, float]:
    """(split, merge) VOI in bits from a contingency table (gt label 0 left out)."""
    total = float(n.sum())
    if total == 0:
        return 0.0, 0.0
    _, gi = np.unique(g, return_inverse=True)
    _, pi = np.unique(p, return_inverse=True)
    gi, pi = gi.reshape(-1), pi.reshape(-1)
    nf = n.astype(np.float64)
    a = np.bincount(gi, weights=nf)  # voxels of each true segment
    b = np.bincount(pi, weights=nf)  # of each predicted one
    split = -float(np.sum(nf / total * np.log2(nf / a[gi])))
    merge = -float(np.sum(nf / total * np.log2(nf / b[pi])))
    return max(split, 0.0), max(merge, 0.0)


def adapted_rand_of_table(g: np.ndarray, p: np.ndarray, n: np.ndarray) -> float:
    """`adapted_rand` from a contingency table (gt label 0 left out)."""
    from scipy.sparse import csr_array

    if n.sum() == 0:
        return 0.0
    _, gi = np.unique(g, return_inverse=True)
    _, pi = np.unique(p, return_inverse=True)
    table = csr_array((n.astype(np.float64), (gi.reshape(-1), pi.reshape(-1))))
    a = np.asarray(table.sum(axis=1)).ravel()
    b = np.asarray(table.sum(axis=0)).ravel()
    total = a.sum()
    if a @ a == total and b @ b == total:
        return 0.0
    return float(adapted_rand_error(table=table)[0])


def segment_to_truth_of_table(g: np.ndarray, p: np.ndarray, n: np.ndarray) -> dict[int, int]:
    """Each predicted segment -> the ground-truth label it overlaps most (0 excluded; ties
    to the smaller label), from a table sorted as `contingency`'s."""
    out: dict[int, int] = {}
    best: dict[int, int] = {}
    for gi, pj, c in zip(g.tolist(), p.tolist(), n.tolist(), strict=True):
        if pj != 0 and c > best.get(pj, 0):
            best[pj] = c
            out[pj] = gi
    return out


def voi(gt: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """(split, merge) variation of information in bits; gt label 0 ignored."""
    _check_shapes(gt, pred)
    if not gt.any():
        return 0.0, 0.0
    split, merge = variation_of_information(gt, pred, ignore_labels=[0])
    return max(float(split), 0.0), max(float(merge), 0.0)


def adapted_rand(gt: np.ndarray, pred: np.ndarray) -> float:
    """Adapted Rand error, 1 - F(Rand precision, Rand recall); gt label 0 ignored. 0 when
    no two voxels share a label in either (nothing to get wrong)."""
    _check_shapes(gt, pred)
    if not gt.any():
        return 0.0
    table = contingency_table(gt, pred, ignore_labels=[0], sparse_type="array")
    a = np.asarray(table.sum(axis=1)).ravel()  # voxels of each true segment
    b = np.asarray(table.sum(axis=0)).ravel()  # of each predicted one
    n = a.sum()
    if a @ a == n and b @ b == n:
        return 0.0
    return float(adapted_rand_error(table=table)[0])


def erl(skeleton_ids: np.ndarray, edges: np.ndarray, edge_lengths: np.ndarray,
        node_labels: np.ndarray) -> float:
    """Expected run length (nm) of skeletons under a segmentation.

    skeleton_ids: (N,) skeleton of each node; edges: (E, 2) node indices; edge_lengths:
    (E,) nm; node_labels: (N,) predicted segment at each node (0 = background).
    """
    if len(edges) == 0:
        return 0.0
    total = float(edge_lengths.sum())
    if total <= 0:
        return 0.0
    fg = node_labels != 0
    pairs = np.unique(np.stack([node_labels[fg], skeleton_ids[fg]], axis=1), axis=0)
    seg_ids, n_skel = np.unique(pairs[:, 0], return_counts=True)
    mergers = set(seg_ids[n_skel > 1].tolist())
    a, b = edges[:, 0], edges[:, 1]
    la, lb = node_labels[a], node_labels[b]
    ok = (la == lb) & (la != 0)
    if mergers:
        ok &= ~np.isin(la, np.fromiter(mergers, dtype=la.dtype))
    if not ok.any():
        return 0.0
    keys = np.stack([skeleton_ids[a][ok], la[ok]], axis=1)
    _, inv = np.unique(keys, axis=0, return_inverse=True)
    c = np.bincount(inv.ravel(), weights=edge_lengths[ok])
    return float(np.sum(c**2) / total)


@dataclass
class SynapseScore:
    """Synapse detection quality."""

    precision: float
    recall: float
    f1: float
    true_positives: int
    n_predicted: int
    n_true: int
    location_f1: float
    compartment_accuracy: float | None


def _f1(tp: int, n_pred: int, n_true: int) -> tuple[float, float, float]:
    p = tp / n_pred if n_pred else (1.0 if n_true == 0 else 0.0)
    r = tp / n_true if n_true else 1.0
    f = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return p, r, f


def _candidates(pred_xyz: np.ndarray, true_xyz: np.ndarray,
                tolerance_nm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(predicted index, true index, distance nm) of every pair within `tolerance_nm`, found
    with a k-d tree: memory grows with the pairs near each other, not with their product."""
    from scipy.spatial import cKDTree

    if len(pred_xyz) == 0 or len(true_xyz) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    # a hair wider than the tolerance, so no pair the formula below keeps is lost to the
    # tree's own rounding
    near = cKDTree(pred_xyz).sparse_distance_matrix(
        cKDTree(true_xyz), tolerance_nm * (1 + 1e-9) + 1e-9, output_type="ndarray")
    i, j = near["i"].astype(np.int64), near["j"].astype(np.int64)
    # the distance as the dense formula gives it, so a tie breaks the same way
    d = np.linalg.norm(pred_xyz[i] - true_xyz[j], axis=1)
    keep = d <= tolerance_nm
    return i[keep], j[keep], d[keep]


def _match(n_pred: int, n_true: int, i: np.ndarray, j: np.ndarray,
           d: np.ndarray) -> list[tuple[int, int]]:
    """One-to-one matching over the allowed pairs (i[k], j[k]) at distance d[k]: the most
    pairs, then the least total distance. The pairs fall into connected groups (pairs sharing
    a synapse), and the optimum is each group's optimum, so each group is solved on its own
    (`linear_sum_assignment` on the group's rows and columns, other pairs forbidden)."""
    from scipy.sparse import coo_array
    from scipy.sparse.csgraph import connected_components

    if len(i) == 0:
        return []
    graph = coo_array((np.ones(len(i)), (i, n_pred + j)), shape=(n_pred + n_true,) * 2)
    _, comp = connected_components(graph, directed=False)
    group = comp[i]
    order = np.argsort(group, kind="stable")
    bounds = np.flatnonzero(np.diff(group[order])) + 1
    out: list[tuple[int, int]] = []
    for part in np.split(order, bounds):
        rows, ri = np.unique(i[part], return_inverse=True)
        cols, ci = np.unique(j[part], return_inverse=True)
        cost = np.full((len(rows), len(cols)), 1e9)
        cost[ri.reshape(-1), ci.reshape(-1)] = d[part]
        valid = np.zeros(cost.shape, bool)
        valid[ri.reshape(-1), ci.reshape(-1)] = True
        r, c = linear_sum_assignment(cost)
        out += [(int(rows[a]), int(cols[b])) for a, b in zip(r, c, strict=True) if valid[a, b]]
    return sorted(out)


def synapse_scores(pred_xyz: np.ndarray, pred_pre: np.ndarray, pred_post: np.ndarray,
                   true_xyz: np.ndarray, true_pre: np.ndarray, true_post: np.ndarray,
                   seg_to_gt: dict[int, int], tolerance_nm: float = 250.0,
                   pred_comp: np.ndarray | None = None,
                   true_comp: np.ndarray | None = None) -> SynapseScore:
    """Match predicted to true synapses one-to-one within `tolerance_nm`.

    A match needs both partners right: the predicted pre and post segments, mapped to the
    ground-truth cell they overlap most (`seg_to_gt`), must equal the true pre and post.
    """
    mp = np.array([seg_to_gt.get(int(s), -1) for s in pred_pre], np.int64)
    mq = np.array([seg_to_gt.get(int(s), -1) for s in pred_post], np.int64)
    n_pred, n_true = len(pred_xyz), len(true_xyz)
    i, j, d = _candidates(np.asarray(pred_xyz, float).reshape(-1, 3),
                          np.asarray(true_xyz, float).reshape(-1, 3), tolerance_nm)
    ok = (mp[i] == np.asarray(true_pre)[j]) & (mq[i] == np.asarray(true_post)[j])
    matches = _match(n_pred, n_true, i[ok], j[ok], d[ok])
    loc = _match(n_pred, n_true, i, j, d)
    p, r, f = _f1(len(matches), len(pred_xyz), len(true_xyz))
    _, _, lf = _f1(len(loc), len(pred_xyz), len(true_xyz))
    acc = None
    if pred_comp is not None and true_comp is not None and matches:
        acc = float(np.mean([pred_comp[i] == true_comp[j] for i, j in matches]))
    return SynapseScore(p, r, f, len(matches), len(pred_xyz), len(true_xyz), lf, acc)


def segment_to_truth(gt: np.ndarray, pred: np.ndarray) -> dict[int, int]:
    """Each predicted segment -> the ground-truth label it overlaps most (0 excluded)."""
    return segment_to_truth_of_table(*contingency(gt, pred))
