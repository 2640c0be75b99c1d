"""Meshes of a segmentation larger than one scale may hold come from a coarser scale of its
pyramid: each mesh spans its segment's voxels at that scale (numpy over the labels written)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorstore as ts

from connectome_query.graphql_api.web import meshes


def _write_scale(root: Path, labels_xyz: np.ndarray, resolution: list[float],
                 create: bool) -> None:
    spec = {"driver": "neuroglancer_precomputed", "kvstore": {"driver": "file", "path": str(root)},
            "scale_metadata": {"size": list(labels_xyz.shape), "resolution": resolution,
                               "encoding": "raw", "chunk_size": [16, 16, 8]}}
    if create:
        spec["multiscale_metadata"] = {"type": "segmentation", "data_type": "uint64",
                                       "num_channels": 1}
    store = ts.open(spec, create=True).result()
    store[..., 0].write(labels_xyz).result()


def _blobs(shape: tuple[int, int, int], seed: int) -> np.ndarray:
    """Boxes of distinct labels at random places (x, y, z)."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint64)
    for label in range(1, 7):
        lo = [int(rng.integers(0, s - 6)) for s in shape]
        size = [int(rng.integers(3, 7)) for _ in shape]
        labels[tuple(slice(a, a + b) for a, b in zip(lo, size, strict=True))] = label
    return labels


@pytest.mark.parametrize("limit, expected_scale", [(10 ** 9, 0), (40 * 40 * 16 - 1, 1)])
def test_meshes_come_from_the_finest_scale_that_fits(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int, expected_scale: int) -> None:
    fine = _blobs((40, 40, 16), seed=5)
    coarse = fine[::2, ::2, :]  # a coarser scale as a pyramid holds it
    resolutions = [[8.0, 8.0, 40.0], [16.0, 16.0, 40.0]]
    root = tmp_path / "segmentation"
    _write_scale(root, fine, resolutions[0], create=True)
    _write_scale(root, coarse, resolutions[1], create=False)
    monkeypatch.setattr(meshes, "MAX_VOXELS", limit)
    labels = (fine, coarse)[expected_scale]
    res = np.asarray(resolutions[expected_scale])
    got = meshes.segment_meshes(root)
    assert sorted(got) == sorted(int(i) for i in np.unique(labels) if i)
    for label, body in got.items():
        vertices, faces = meshes.decode_mesh(body)
        where = np.argwhere(labels == label)
        np.testing.assert_allclose(vertices.min(0), where.min(0) * res, rtol=1e-5)
        np.testing.assert_allclose(vertices.max(0), (where.max(0) + 1) * res, rtol=1e-5)
        assert faces.max() < len(vertices)


def test_a_pyramid_whose_coarsest_scale_is_too_large_gets_a_named_error() -> None:
    scales = [{"size": [64, 64, 8]}, {"size": [32, 32, 8]}]
    assert meshes.mesh_scale(scales) == 0
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(meshes, "MAX_VOXELS", 32 * 32 * 8)
        assert meshes.mesh_scale(scales) == 1
        patch.setattr(meshes, "MAX_VOXELS", 100)
        with pytest.raises(ValueError, match="coarsest of this segmentation's 2 scales has 8192"):
            meshes.mesh_scale(scales)
