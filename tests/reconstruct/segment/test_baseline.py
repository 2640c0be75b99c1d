"""The baseline: threshold the affinities, label connected components (cc3d)."""

from __future__ import annotations

import numpy as np
import pytest

from connectome_query.reconstruct import segment
from connectome_query.reconstruct.lattice import neighbour_slices
from tests.support.reconstruct import random_affs, reference_components


def test_vcg_bits_follow_waterz_layout() -> None:
    affs = np.zeros((3, 2, 2, 2), np.float32)
    affs[2, :, :, 1] = 1.0  # link x=0 and x=1 only
    lab = segment.threshold_components(affs, 0.5, min_size=1)
    assert len(np.unique(lab)) == 4  # four 2-voxel pairs, no background
    assert (lab[:, :, 0] == lab[:, :, 1]).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_threshold_components_match_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    affs = random_affs(rng, (4, 6, 7))
    strong = affs > 0.6
    mask = np.zeros(affs.shape[1:], bool)
    for c in range(3):  # both ends of every edge inside the volume above 0.6
        lo, hi = neighbour_slices(c)
        edge = strong[c][hi]
        mask[hi] |= edge
        mask[lo] |= edge
    ref = reference_components(mask, affs, 0.6)
    got = segment.threshold_components(affs, 0.6, min_size=1)
    np.testing.assert_array_equal(got, ref)  # same numbering: order of first appearance
    sizes = np.bincount(ref.reshape(-1))
    got3 = segment.threshold_components(affs, 0.6, min_size=3)
    keep = (sizes >= 3)[ref] & (ref != 0)
    assert ((got3 != 0) == keep).all()
    assert len(np.unique(got3[keep])) == int((sizes[1:] >= 3).sum())
