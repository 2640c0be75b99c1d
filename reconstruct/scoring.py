"""Scores of a run against an EM directory's ground truth (segmentation, synapses, cell classes).

The metrics themselves are defined in `metrics`; this module reads the truth tables for them and
names the results as `metrics.json` holds them (see RUN_DIR.md).
"""

from __future__ import annotations

from typing import Any

import cc3d
import numpy as np
import pandas as pd

from connectome_query.reconstruct import metrics

TISSUE_XYZ = ("tissue_x", "tissue_y", "tissue_z")
"""Skeleton table columns: a node's place in the tissue (nm) when x, y, z are in another frame."""


def skeleton_arrays(sk: pd.DataFrame, vs_zyx: tuple[float, float, float],
                    shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                     np.ndarray]:
    """(skeleton ids, edges, edge lengths nm, node voxel indices) from a skeleton table.

    Nodes sit at x, y, z; a table carried into another frame (`align.truth_frame`) also holds
    their places in the tissue (`TISSUE_XYZ`), and edge lengths are measured there, so that a
    frame's misalignment does not lengthen the cable."""
    node = sk["node_id"].to_numpy(np.int64)
    par = sk["parent_id"].to_numpy(np.int64)
    # each node's parent by id (of repeated ids, the last row), as arrays: a few tens of
    # bytes a node where a dict of Python ints took hundreds
    order = np.argsort(node, kind="stable")
    ids = node[order]
    j = np.searchsorted(ids, par, side="right") - 1
    has = (j >= 0) & (ids[np.maximum(j, 0)] == par)
    edges = np.stack([np.flatnonzero(has), order[j[has]]], axis=1).astype(np.int64)
    xyz = sk[["x", "y", "z"]].to_numpy(float)
    at = sk[list(TISSUE_XYZ)].to_numpy(float) if set(TISSUE_XYZ) <= set(sk.columns) else xyz
    lengths = np.linalg.norm(at[edges[:, 0]] - at[edges[:, 1]], axis=1) if len(edges) else \
        np.zeros(0)
    return sk["segment_id"].to_numpy(np.int64), edges, lengths, node_voxels(xyz, vs_zyx, shape)


def node_voxels(xyz: np.ndarray, vs_zyx: tuple[float, float, float],
                shape: tuple[int, ...]) -> np.ndarray:
    """(z, y, x) voxel indices of nodes at (x, y, z) nm: the nearest voxel, clipped into the
    volume."""
    vox = np.round(np.asarray(xyz, float).reshape(-1, 3)[:, ::-1]
                   / np.array(vs_zyx)).astype(np.int64)
    return np.clip(vox, 0, np.array(shape[-3:]) - 1)


def segmentation_scores(seg: np.ndarray, truth: dict[str, Any],
                        vs: tuple[float, float, float]) -> dict[str, float]:
    """VOI, ARAND, ERL and NERL of a segmentation against ground truth."""
    gt = truth["segmentation"]
    sids, edges, lengths, vox = skeleton_arrays(truth["skeletons"], vs, gt.shape)
    at = (vox[:, 0], vox[:, 1], vox[:, 2])
    e_pred = metrics.erl(sids, edges, lengths, seg[at].astype(np.int64))
    e_gt = metrics.erl(sids, edges, lengths, gt[at].astype(np.int64))
    # the best any segmentation of this block can do: each cell's pieces that are
    # connected inside the block (a neurite leaving and re-entering cannot be joined)
    gt_cc = cc3d.connected_components(gt, connectivity=6)
    e_cc = metrics.erl(sids, edges, lengths, gt_cc[at].astype(np.int64))
    split, merge = metrics.voi(gt, seg)
    return {"voi_split": split, "voi_merge": merge, "voi": split + merge,
            "arand": metrics.adapted_rand(gt, seg), "erl_nm": e_pred, "erl_truth_nm": e_gt,
            "erl_truth_pieces_nm": e_cc,
            "nerl": e_pred / e_cc if e_cc > 0 else 0.0,
            "nerl_truth_labels": e_pred / e_gt if e_gt > 0 else 0.0,
            "n_segments": int(len(np.unique(seg)) - (1 if (seg == 0).any() else 0))}


def synapse_metrics(seg: np.ndarray, syn: pd.DataFrame, truth: dict[str, Any]) -> dict[str, Any]:
    """Synapse precision / recall / F1 (partners must be right) and compartment accuracy."""
    return synapse_metrics_of(metrics.segment_to_truth(truth["segmentation"], seg), syn, truth)


def synapse_metrics_of(mapping: dict[int, int], syn: pd.DataFrame,
                       truth: dict[str, Any]) -> dict[str, Any]:
    """`synapse_metrics` given each segment's true cell (`metrics.segment_to_truth`)."""
    ts_ = truth["synapses"]
    sc = metrics.synapse_scores(
        syn[["x", "y", "z"]].to_numpy(float), syn["pre_segment_id"].to_numpy(np.int64),
        syn["post_segment_id"].to_numpy(np.int64), ts_[["x", "y", "z"]].to_numpy(float),
        ts_["pre_segment_id"].to_numpy(np.int64), ts_["post_segment_id"].to_numpy(np.int64),
        mapping, pred_comp=syn["post_compartment"].astype(str).to_numpy(),
        true_comp=ts_["post_compartment"].astype(str).to_numpy())
    return {"synapse_precision": sc.precision, "synapse_recall": sc.recall,
            "synapse_f1": sc.f1, "synapse_location_f1": sc.location_f1,
            "synapses_predicted": sc.n_predicted, "synapses_true": sc.n_true,
            "synapses_matched": sc.true_positives,
            "post_compartment_accuracy": sc.compartment_accuracy}


def class_metrics(seg: np.ndarray, segs: pd.DataFrame, truth: dict[str, Any]) -> dict[str, Any]:
    """Cell-class accuracy over predicted segments with a soma."""
    return class_metrics_of(metrics.segment_to_truth(truth["segmentation"], seg), segs, truth)


def class_metrics_of(mapping: dict[int, int], segs: pd.DataFrame,
                     truth: dict[str, Any]) -> dict[str, Any]:
    """`class_metrics` given each segment's true cell."""
    true_cls = dict(zip(truth["segments"]["segment_id"].astype(int),
                        truth["segments"]["predicted_class"].astype(str), strict=True))
    with_soma = segs[segs["soma_x"].notna()]
    ok = [true_cls.get(mapping.get(int(s), -1)) == c
          for s, c in zip(with_soma["segment_id"], with_soma["predicted_class"], strict=True)]
    return {"class_accuracy_somata": float(np.mean(ok)) if ok else None,
            "somata_found": len(ok),
            "somata_true": int(truth["segments"]["soma_x"].notna().sum())}


def score_run(seg: np.ndarray, baseline: np.ndarray | None, syn: pd.DataFrame,
              segments: pd.DataFrame, truth: dict[str, Any],
              vs: tuple[float, float, float]) -> dict[str, Any]:
    """metrics.json: the pipeline's scores, and the baseline's segmentation scores when
    there is one."""
    result: dict[str, Any] = {"pipeline": segmentation_scores(seg, truth, vs)}
    if baseline is not None:
        result["baseline_threshold_cc"] = segmentation_scores(baseline, truth, vs)
    result["pipeline"].update(synapse_metrics(seg, syn, truth))
    result["pipeline"].update(class_metrics(seg, segments, truth))
    return result
