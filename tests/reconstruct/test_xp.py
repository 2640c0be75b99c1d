"""The array-module chooser: numpy without a GPU, CuPy equal to numpy with one."""

from __future__ import annotations

import numpy as np
import pytest

from connectome_query.reconstruct import boundary, xp


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
