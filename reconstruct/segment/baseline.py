"""The naive baseline scored beside ours: threshold the affinities, label connected components.

cc3d labels the graph of strong edges (a voxel connectivity graph); fastremap drops and
renumbers. Off the hot path: the run computes it only to score it against a truth.
"""

from __future__ import annotations

import cc3d
import fastremap
import numpy as np

from connectome_query.reconstruct.lattice import neighbour_slices
from connectome_query.reconstruct.segment.layout import as_float32, check_affinities
from connectome_query.reconstruct.segment.numbering import size_filter


def _strong_edge_graph(affs: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(cc3d's 6-connected voxel connectivity graph of the edges above `threshold`, the
    voxels with such an edge). Only edges inside the volume count (the first plane's
    affinities link to no voxel). cc3d's bits: +axis 2c, -axis 2c + 1 for array axis c."""
    thr = np.float32(threshold)
    graph = np.zeros(affs.shape[1:], np.uint8)
    touched = np.zeros(affs.shape[1:], bool)
    for c in range(3):
        lo, hi = neighbour_slices(c)
        strong = affs[c][hi] > thr
        graph[hi] |= strong.astype(np.uint8) << np.uint8(2 * c + 1)  # to the -1 neighbour
        graph[lo] |= strong.astype(np.uint8) << np.uint8(2 * c)  # to the +1 neighbour
        touched[hi] |= strong
        touched[lo] |= strong
    return graph, touched


def threshold_components(affs: np.ndarray, threshold: float = 0.5,
                         min_size: int = 200) -> np.ndarray:
    """Baseline: keep affinities above `threshold`, label connected components (uint64,
    1..N in order of first appearance, segments under `min_size` voxels dropped)."""
    check_affinities(affs)
    graph, touched = _strong_edge_graph(as_float32(affs), threshold)
    labels = cc3d.color_connectivity_graph(graph, connectivity=6)
    labels *= touched  # voxels without a strong edge are no segment (cc3d gives each its own)
    labels, _ = fastremap.renumber(labels, in_place=True)  # few ids left, and compact
    return size_filter(labels, min_size)
