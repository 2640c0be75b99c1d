"""Quality metrics against ground truth (pure logic): ERL/NERL, VOI, ARAND, synapse P/R/F1.

VOI (split = H(pred | gt), merge = H(gt | pred), in bits; CREMI) and ARAND (1 - F-score of Rand
precision and recall; SNEMI3D) are skimage's, ground-truth label 0 ignored. ERL = sum over
skeletons s and segments k of c_sk^2 / L_total, with edges touching background, split between
segments, or inside a merger (a segment holding nodes of two or more skeletons) counting zero;
NERL = ERL / ERL of the ground-truth labels used as the prediction.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
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
    return erl_of_cells(erl_cells_of_edges(skeleton_ids, edges, edge_lengths, node_labels))


def erl_cells_of_edges(skeleton_ids: np.ndarray, edges: np.ndarray, edge_lengths: np.ndarray,
                       node_labels: np.ndarray) -> pd.DataFrame:
    """`erl_cells` of a whole skeleton table (`erl`'s arguments), an edge's piece being its
    child's (first node's) skeleton's."""
    edges = np.asarray(edges, np.int64).reshape(-1, 2)
    lengths = np.asarray(edge_lengths, np.float64).reshape(-1)
    # one unsigned type: stacking uint64 segment ids with int64 cells would give float64,
    # where ids of FlyWire's range (~7e17) collide
    labels = np.asarray(node_labels).astype(np.uint64)
    cells = np.asarray(skeleton_ids).astype(np.uint64)
    child, parent = edges[:, 0], edges[:, 1]
    cell = cells[child]
    runs = np.stack([cell, labels[child], labels[parent]], axis=1)
    return erl_cells(np.stack([labels, cells], axis=1), runs, lengths,
                     pd.Series(lengths, index=cell.astype(np.int64)))


def erl_cells(labelled: np.ndarray, runs: np.ndarray, run_nm: np.ndarray,
              cable: pd.Series) -> pd.DataFrame:
    """Per true cell (sorted): `cable_nm`, `squares_nm2` (its pieces' squared lengths summed),
    `erl_nm` (their quotient) and `merged` (a merger holds one of its nodes); the one
    definition of ERL (`erl`, the engine's block sums and the run report use it).

    labelled: (N, 2) (segment, cell) of skeleton nodes, repeats allowed, segment 0 =
    background; runs: (R, 3) (cell, segment at one end, segment at the other) of edges or of
    sums of edges, run_nm: (R,) their lengths; cable: lengths indexed by cell, summed per cell.
    A piece of a cell: its edges with both ends in one segment, unless that segment holds nodes
    of two or more cells (a merger, whose pieces count zero).
    """
    pairs = np.unique(labelled, axis=0)
    fg = pairs[pairs[:, 0] != 0]
    seg_ids, n_cells = np.unique(fg[:, 0], return_counts=True)
    mergers = seg_ids[n_cells > 1]
    seg_a, seg_b = runs[:, 1], runs[:, 2]
    ok = (seg_a == seg_b) & (seg_a != 0) & ~np.isin(seg_a, mergers)
    squares = pd.Series(dtype=np.float64)
    if ok.any():
        pieces, inv = np.unique(np.stack([runs[ok, 0], seg_a[ok]], axis=1), axis=0,
                                return_inverse=True)
        piece_nm = np.bincount(inv.reshape(-1), weights=run_nm[ok], minlength=len(pieces))
        squares = pd.Series(piece_nm**2).groupby(pieces[:, 0].astype(np.int64)).sum()
    merged = fg[np.isin(fg[:, 0], mergers), 1].astype(np.int64)
    out = pd.DataFrame({"cell": np.unique(pairs[:, 1]).astype(np.int64)})
    out["cable_nm"] = out["cell"].map(cable.groupby(level=0).sum()).fillna(0.0)
    out["squares_nm2"] = out["cell"].map(squares).fillna(0.0)
    out["erl_nm"] = (out["squares_nm2"] / out["cable_nm"].where(out["cable_nm"] > 0)
                     ).fillna(0.0)
    out["merged"] = out["cell"].isin(merged)
    return out


def erl_of_cells(cells: pd.DataFrame) -> float:
    """ERL (nm) of all skeletons from `erl_cells`: the cells' squared pieces over all cable."""
    total = float(cells["cable_nm"].sum())
    return float(cells["squares_nm2"].sum() / total) if total > 0 else 0.0


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


def _match(pred_xyz: np.ndarray, true_xyz: np.ndarray, tolerance_nm: float,
           allowed: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
           ) -> list[tuple[int, int]]:
    """One-to-one matching of predicted to true points within `tolerance_nm` (pairs
    `allowed(i, j)` only): the most pairs, then the least total distance. Candidate pairs
    come from k-d trees and each connected group of them is assigned on its own, so memory
    grows with the points, not with their product (a dense 16k × 16k assignment took 17 GB)."""
    if len(pred_xyz) == 0 or len(true_xyz) == 0:
        return []
    near = cKDTree(pred_xyz).sparse_distance_matrix(cKDTree(true_xyz), tolerance_nm,
                                                     output_type="ndarray")
    i, j, d = (near[k] for k in ("i", "j", "v"))
    keep = d <= tolerance_nm
    if allowed is not None:
        keep &= allowed(i, j)
    i, j, d = i[keep].astype(np.int64), j[keep].astype(np.int64), d[keep]
    if len(i) == 0:
        return []
    n_pred = len(pred_xyz)
    size = n_pred + len(true_xyz)
    _, group = connected_components(coo_array((np.ones(len(i)), (i, j + n_pred)),
                                              shape=(size, size)), directed=False)
    order = np.argsort(group[i], kind="stable")
    i, j, d = i[order], j[order], d[order]
    starts = np.flatnonzero(np.r_[True, np.diff(group[i]) != 0, True])
    out: list[tuple[int, int]] = []
    for a, b in itertools.pairwise(starts):
        if b - a == 1:
            out.append((int(i[a]), int(j[a])))
            continue
        rows, ri = np.unique(i[a:b], return_inverse=True)
        cols, ci = np.unique(j[a:b], return_inverse=True)
        forbidden = float(d[a:b].sum()) + 1.0  # above any sum of allowed distances
        cost = np.full((len(rows), len(cols)), forbidden)
        cost[ri, ci] = d[a:b]
        r, c = linear_sum_assignment(cost)
        out += [(int(rows[x]), int(cols[y])) for x, y in zip(r, c, strict=True)
                if cost[x, y] < forbidden]
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
    matches = _match(pred_xyz, true_xyz, tolerance_nm,
                     lambda i, j: (mp[i] == true_pre[j]) & (mq[i] == true_post[j]))
    loc = _match(pred_xyz, true_xyz, tolerance_nm)
    p, r, f = _f1(len(matches), len(pred_xyz), len(true_xyz))
    _, _, lf = _f1(len(loc), len(pred_xyz), len(true_xyz))
    acc = None
    if pred_comp is not None and true_comp is not None and matches:
        acc = float(np.mean([pred_comp[i] == true_comp[j] for i, j in matches]))
    return SynapseScore(p, r, f, len(matches), len(pred_xyz), len(true_xyz), lf, acc)


def segment_to_truth(gt: np.ndarray, pred: np.ndarray) -> dict[int, int]:
    """Each predicted segment -> the ground-truth label it overlaps most (0 excluded)."""
    return segment_to_truth_of_table(*contingency(gt, pred))
