"""Array-module chooser and importing affinities made elsewhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from connectome_query.reconstruct import boundary, io, pipeline, xp


def test_numpy_backend_without_gpu() -> None:
    if xp.backend_name() == "cupy":
        pytest.skip("a CUDA device is present")
    assert xp.get() is np
    import scipy.ndimage

    assert xp.ndimage() is scipy.ndimage


@pytest.mark.gpu
def test_cupy_backend_matches_numpy() -> None:
    if xp.backend_name() != "cupy":
        pytest.skip("needs a CUDA device")
    a = np.random.default_rng(0).random((16, 32, 32)).astype(np.float32)
    f_gpu = xp.to_numpy(boundary.features(a, (40.0, 16.0, 16.0)))
    import os

    os.environ["CONNECTOME_XP"] = "numpy"
    xp._cupy.cache_clear()
    try:
        f_cpu = boundary.features(a, (40.0, 16.0, 16.0))
    finally:
        del os.environ["CONNECTOME_XP"]
        xp._cupy.cache_clear()
    assert np.allclose(f_gpu, f_cpu, atol=1e-4)


def test_imported_affinities(clean_dir: Path, tmp_path: Path, model_path: Path) -> None:
    truth = pipeline.read_truth(clean_dir, (64, 64, 64))
    assert truth is not None
    affs = boundary.true_affinities(truth["segmentation"])
    p = tmp_path / "affs.zarr"
    io.write_zarr(p, (affs * 255).astype(np.uint8))
    res = pipeline.reconstruct(clean_dir, tmp_path / "run", model_path, p)
    assert res["pipeline"]["voi_merge"] < 0.3
    assert (tmp_path / "run" / "segments.parquet").exists()


def test_class_probabilities_in_tiles_equal_one_piece(model_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The filter bank goes in in-plane tiles with a margin (memory); on a noisy volume
    (missing and shifted sections) the probabilities equal the untiled ones exactly."""
    from connectome_query.reconstruct import synth

    vs = (40.0, 16.0, 16.0)
    model = io.load_model(model_path)
    img = synth.render(synth.make_plan(synth.SynthConfig((24, 112, 96), vs, "noisy", 2))).image
    monkeypatch.setattr(boundary, "TILE_YX", 10_000)
    whole = boundary.probabilities(model, img, vs)
    monkeypatch.setattr(boundary, "TILE_YX", 40)
    tiled = boundary.probabilities(model, img, vs)
    assert np.array_equal(whole, tiled)
    # a margin narrower than the filters reach would not be equal
    monkeypatch.setattr(boundary, "FEATURE_MARGIN", 2)
    assert not np.array_equal(whole, boundary.probabilities(model, img, vs))
