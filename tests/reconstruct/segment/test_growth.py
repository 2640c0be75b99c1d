"""Growth against a synchronous voxel-by-voxel reference."""

from __future__ import annotations

import numpy as np
import pytest

from connectome_query.reconstruct import segment
from tests.support.reconstruct import random_affs, reference_grow


@pytest.mark.parametrize("shape", [(4, 7, 8), (1, 9, 8), (5, 1, 9), (6, 7, 1)])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("layers", [1, 2, 64])
def test_grow_matches_synchronous_reference(shape: tuple[int, int, int], seed: int,
                                            layers: int) -> None:
    rng = np.random.default_rng(seed)
    affs = random_affs(rng, shape)
    lab = np.where(rng.random(shape) < 0.08, rng.integers(1, 5, shape), 0).astype(np.uint32)
    ref = reference_grow(lab, affs, 0.4, layers)
    segment.grow(lab, affs, 0.4, layers)
    np.testing.assert_array_equal(lab, ref)
