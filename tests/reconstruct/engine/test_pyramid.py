"""The Neuroglancer copy's pyramid, written tile by tile on the engine: each coarser scale holds,
for every voxel, the most frequent label of the pixels it covers in the scale before."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorstore as ts
from distributed import Client

from connectome_query.reconstruct import io
from connectome_query.reconstruct.engine import context, pyramid
from connectome_query.reconstruct.engine.cluster import ClusterSpec
from connectome_query.reconstruct.engine.manifest import Manifest
from connectome_query.reconstruct.engine.runner import Engine

VS = (40.0, 16.0, 16.0)


def _scale(path: Path, k: int) -> np.ndarray:
    spec = {"driver": "neuroglancer_precomputed", "scale_index": k,
            "kvstore": {"driver": "file", "path": str(path)}}
    return np.asarray(ts.open(spec).result()[..., 0].read().result()).transpose(2, 1, 0)


def _is_a_mode(fine: np.ndarray, coarse: np.ndarray, fz: int = 1) -> bool:
    """Every coarse voxel's label is among the most frequent of the fz x 2 x 2 fine voxels
    it covers (the last of an odd size covers fewer)."""
    for z, y, x in np.ndindex(*coarse.shape):
        group = fine[fz * z:fz * z + fz, 2 * y:2 * y + 2, 2 * x:2 * x + 2].ravel()
        labels, counts = np.unique(group, return_counts=True)
        if coarse[z, y, x] not in labels[counts == counts.max()]:
            return False
    return True


def test_pyramid_down_to_one_chunk(tmp_path: Path, cluster: ClusterSpec) -> None:
    rng = np.random.default_rng(3)
    zz, yy, xx = np.mgrid[:6, :150, :130]
    seg = ((yy // 7) * 100 + xx // 5 + 1000 * (zz // 4)).astype(np.uint64)
    seg[rng.random(seg.shape) < 0.2] = 0
    io.write_zarr(tmp_path / "segmentation.zarr", seg)
    run = context.Run(str(tmp_path), str(tmp_path), seg.shape, VS, (4, 64, 64))
    with Client(cluster.scheduler) as client:
        pyramid.pyramid(Engine(client, Manifest(tmp_path)), run)
    out = tmp_path / "segmentation.precomputed"
    info = io.read_json(out / "info", "info")
    # z is halved too once the sections are thinner than twice the pixels (40 < 2 x 32 nm)
    assert [s["size"] for s in info["scales"]] == [[130, 150, 6], [65, 75, 6], [33, 38, 3]]
    assert [s["resolution"] for s in info["scales"]] == [[16, 16, 40], [32, 32, 40],
                                                          [64, 64, 80]]
    levels = [_scale(out, k) for k in range(3)]
    np.testing.assert_array_equal(levels[0], seg)
    assert _is_a_mode(levels[0], levels[1]) and _is_a_mode(levels[1], levels[2], fz=2)
    assert not _is_a_mode(levels[0], levels[0][:, ::2, ::2] * 0 + 7)  # the check can fail
