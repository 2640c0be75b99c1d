"""Array-module chooser: CuPy where a CUDA device exists, numpy elsewhere, one code path.

Voxelwise code calls `xp.get()` / `xp.ndimage()` and never imports cupy directly. Set
`CONNECTOME_XP=numpy` to force numpy even where CuPy and a GPU are present.
"""

from __future__ import annotations

from functools import lru_cache
from types import ModuleType
from typing import Any

import numpy as np

from connectome_query.graphdb.settings import ComputeSettings, from_env


@lru_cache(maxsize=1)
def _cupy() -> ModuleType | None:
    if from_env(ComputeSettings).xp == "numpy":
        return None
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None
        return cupy
    except Exception:
        return None


def get() -> ModuleType:
    """The array module to use: cupy when a CUDA device is usable, else numpy."""
    cp = _cupy()
    return cp if cp is not None else np


def ndimage() -> ModuleType:
    """`cupyx.scipy.ndimage` on GPU, `scipy.ndimage` on CPU (same function names)."""
    if _cupy() is not None:
        import cupyx.scipy.ndimage as cnd

        return cnd
    import scipy.ndimage as snd

    return snd


def backend_name() -> str:
    """'cupy' or 'numpy'."""
    return "cupy" if _cupy() is not None else "numpy"


def asarray(a: Any) -> Any:
    """Move an array onto the active backend."""
    return get().asarray(a)


def to_numpy(a: Any) -> np.ndarray:
    """Bring an array from either backend back to host numpy."""
    if hasattr(a, "get") and not isinstance(a, np.ndarray):
        return np.asarray(a.get())
    return np.asarray(a)
