"""The report's own picture, orthogonal sections with labels and synapses over the EM
(matplotlib, no pyplot state); its histograms and bars are `plotting.charts`."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

AXES = {"xy": 0, "xz": 1, "yz": 2}
"""Plane name -> the (z, y, x) axis held fixed."""


def label_colours(labels: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """RGBA per voxel: a colour fixed by each label's id (hashed), transparent for 0."""
    ids = labels.astype(np.uint64)
    h = (ids * np.uint64(2654435761)) & np.uint64(0xFFFFFF)
    rgba = np.zeros((*labels.shape, 4), np.float32)
    rgba[..., 0] = ((h >> np.uint64(16)) & np.uint64(255)).astype(np.float32) / 255
    rgba[..., 1] = ((h >> np.uint64(8)) & np.uint64(255)).astype(np.float32) / 255
    rgba[..., 2] = (h & np.uint64(255)).astype(np.float32) / 255
    rgba[..., 3] = np.where(labels != 0, alpha, 0.0)
    return rgba


def slices(image: Mapping[str, np.ndarray], labels: Mapping[str, Mapping[str, np.ndarray]],
           synapses: pd.DataFrame, vs_zyx: tuple[float, float, float],
           centre: tuple[int, int, int], shape: tuple[int, int, int]) -> Figure:
    """Rows: one per labelling (segmentation, truth); columns: the xy, xz and yz sections
    through `centre` (z, y, x) of a volume of `shape`; synapses within one voxel of the
    section drawn as points. Sections are plane name -> 2-D array (`volumes.centre_sections`,
    perhaps every k-th voxel: each is drawn over the whole extent of its plane)."""
    fig = Figure(figsize=(12, 4 * len(labels)))
    axes = fig.subplots(len(labels), 3, squeeze=False)
    pos = synapses[["z", "y", "x"]].to_numpy(float) / np.array(vs_zyx) if len(synapses) \
        else np.zeros((0, 3))
    for row, (name, lab) in enumerate(labels.items()):
        for col, plane in enumerate(AXES):
            fixed = AXES[plane]
            ax = axes[row][col]
            aspect = _aspect(plane, vs_zyx)
            other = [a for a in range(3) if a != fixed]
            extent = (-0.5, shape[other[1]] - 0.5, shape[other[0]] - 0.5, -0.5)
            ax.imshow(image[plane], cmap="gray", aspect=aspect, interpolation="nearest",
                      extent=extent)
            ax.imshow(label_colours(lab[plane]), aspect=aspect, interpolation="nearest",
                      extent=extent)
            near = np.abs(pos[:, fixed] - centre[fixed]) <= 1.0
            ax.scatter(pos[near, other[1]], pos[near, other[0]], s=14, c="#ff3300",
                       marker="o", edgecolors="white", linewidths=0.5)
            ax.set_title(f"{name}: {plane} at {'zyx'[fixed]} = {centre[fixed]}")
            ax.set_xticks([])
            ax.set_yticks([])
    return fig


def _aspect(plane: str, vs_zyx: tuple[float, float, float]) -> float:
    fixed = AXES[plane]
    rows, cols = [a for a in range(3) if a != fixed]
    return vs_zyx[rows] / vs_zyx[cols]
