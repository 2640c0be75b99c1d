"""Ground-truth tables of a synthetic volume: skeleton nodes, segments and synapses.

Made from the plan and from what rendering counted (segment sizes, cleft voxels), so that they
describe the volume as drawn: a cell's node hidden by another cell, or a cleft cut to a sliver by
the volume's edge, is left out.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from connectome_query.reconstruct.synth.plan import Plan
from connectome_query.schema.vocabulary import Compartment

MIN_TRUTH_CLEFT_VOXELS = 4
"""A synapse is in the truth table when at least this many of its cleft voxels lie in the volume:
a sliver of 1-3 voxels (a cleft cut by the volume edge, or one overdrawn by a neighbour's) cannot
be told from a dark membrane fleck, nor its partners checked."""


def stamp_voxels(plan: Plan) -> tuple[np.ndarray, np.ndarray]:
    """(voxel index (z, y, x) of each stamp's centre, whether it lies in the volume)."""
    cfg = plan.config
    at = np.round(plan.stamps[:, :3] / np.array(cfg.voxel_size_zyx)).astype(np.int64)
    inside = np.all((at >= 0) & (at < np.array(cfg.shape_zyx)), axis=1)
    return at, inside


def truth_skeleton_nodes(plan: Plan, labels_at: np.ndarray) -> dict[str, np.ndarray]:
    """Skeleton nodes kept for metrics: inside the volume and inside their own label.

    `labels_at` holds the ground-truth label at each stamp's voxel (0 outside). Nodes
    occluded by another cell are dropped, so the truth used as a prediction has no merger.
    """
    keep = labels_at == plan.stamp_label
    parent = plan.stamp_parent.copy()
    ok_parent = (parent >= 0) & keep[np.maximum(parent, 0)]
    parent[~ok_parent] = -1
    idx = np.nonzero(keep)[0]
    return {
        "segment_id": plan.stamp_label[idx],
        "node_id": idx.astype(np.int64),
        "parent_id": parent[idx],
        "z": plan.stamps[idx, 0],
        "y": plan.stamps[idx, 1],
        "x": plan.stamps[idx, 2],
        "radius": plan.stamps[idx, 3],
        "compartment": plan.stamp_comp[idx],
    }


def segment_rows(plan: Plan, sizes: np.ndarray) -> list[tuple[Any, ...]]:
    """(segment_id, size_voxels, soma_x, soma_y, soma_z (nm; None when the soma's centre
    is outside the volume), class) of every cell with voxels in the volume; `sizes`:
    voxels per label."""
    cfg = plan.config
    vs = np.array(cfg.voxel_size_zyx)
    rows = []
    for nid in range(1, len(sizes)):
        if sizes[nid] == 0:
            continue
        c, _ = plan.soma[nid]
        cv = np.round(c / vs)
        ins = bool(np.all((cv >= 0) & (cv < np.array(cfg.shape_zyx))))
        rows.append((nid, int(sizes[nid]), c[2] if ins else None, c[1] if ins else None,
                     c[0] if ins else None, plan.neuron_class[nid]))
    return rows


def synapse_rows(plan: Plan, cleft_stats: np.ndarray) -> list[tuple[Any, ...]]:
    """(synapse_id, pre, post, x, y, z (cleft centroid, nm), size_voxels, confidence 1,
    postsynaptic compartment) of every synapse with `MIN_TRUTH_CLEFT_VOXELS` cleft voxels
    in the volume; `cleft_stats`: the boxes' summed `Slab.cleft_stats`."""
    vz, vy, vx = plan.config.voxel_size_zyx
    rows = []
    for i in np.nonzero(cleft_stats[:, 0] >= MIN_TRUTH_CLEFT_VOXELS)[0]:
        n = cleft_stats[i, 0]
        comp = int(np.argmax(cleft_stats[i, 4:9]))
        rows.append((int(i + 1), int(plan.synapse_pre[i]), int(plan.synapse_post[i]),
                     vx * cleft_stats[i, 3] / n, vy * cleft_stats[i, 2] / n,
                     vz * cleft_stats[i, 1] / n, int(n), 1.0, Compartment(comp).label))
    return rows
