"""Maps and warping: a section's solved mesh -> per-pixel source coordinates -> the image.

A map is the mesh's node positions (gy, gx, 2): node (i, j) of the aligned frame, at pixel
(i stride, j stride), shows the stitched section at that position. Between nodes positions are
interpolated bilinearly (the mesh is piecewise linear).
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi


def identity_nodes(grid: tuple[int, int], stride: int) -> np.ndarray:
    """Node positions of the undeformed grid (gy, gx, 2)."""
    return np.moveaxis(np.mgrid[0:grid[0], 0:grid[1]], 0, -1).astype(np.float64) * stride


def sample_nodes(field: np.ndarray, points: np.ndarray, stride: int) -> np.ndarray:
    """Values (.., c) of a node field (gy, gx, c) at section points (.., 2), bilinear; points
    beyond the grid take the edge value."""
    gy, gx = field.shape[:2]
    py = np.clip(points[..., 0] / stride, 0, gy - 1)
    px = np.clip(points[..., 1] / stride, 0, gx - 1)
    return np.stack([ndi.map_coordinates(field[..., k], [py, px], order=1, mode="nearest")
                     for k in range(field.shape[-1])], axis=-1)


def source_coordinates(nodes: np.ndarray, stride: int, shape: tuple[int, int]) -> np.ndarray:
    """(2, y, x) float32: where in the stitched section each aligned pixel comes from."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    return np.moveaxis(sample_nodes(nodes, np.stack([yy, xx], -1), stride), -1, 0).astype(
        np.float32)


def warp_image(image: np.ndarray, coords: np.ndarray, cval: float = 0.0) -> np.ndarray:
    """The image seen through a map (bilinear); outside the section `cval`."""
    return ndi.map_coordinates(image, coords, order=1, mode="constant", cval=cval).astype(
        np.float32)


def warp_mask(mask: np.ndarray, coords: np.ndarray, outside: int = 0) -> np.ndarray:
    """A label or flag mask seen through a map (nearest pixel); outside the section
    `outside`."""
    return ndi.map_coordinates(mask, coords, order=0, mode="constant", cval=outside).astype(
        mask.dtype)


def outside_section(coords: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Aligned pixels whose source lies outside the stitched section."""
    return ((coords[0] < 0) | (coords[0] > shape[0] - 1) | (coords[1] < 0)
            | (coords[1] > shape[1] - 1))
