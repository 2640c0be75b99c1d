"""The seed erosion (bit rows in the indexing pass) against a thresholded EDT."""

from __future__ import annotations

import numpy as np
import pytest

from connectome_query.reconstruct import segment


@pytest.mark.parametrize("vs", [(40.0, 16.0, 16.0), (8.0, 8.0, 8.0), (30.0, 10.0, 7.0)])
@pytest.mark.parametrize("dist", [0.0, 12.0, 20.0, 45.0, 500.0])
def test_erode_is_thresholded_edt(vs: tuple[float, float, float], dist: float) -> None:
    from scipy import ndimage

    rng = np.random.default_rng(int(dist))
    core = ndimage.binary_opening(rng.random((9, 12, 13)) < 0.8)
    ref = ndimage.distance_transform_edt(core, sampling=vs) > dist
    np.testing.assert_array_equal(segment.erode(core, vs, dist), ref)
    full = np.ones_like(core)
    full[0, 0, 0] = False  # one background voxel: a large ball erodes everything
    ref = ndimage.distance_transform_edt(full, sampling=vs) > dist
    np.testing.assert_array_equal(segment.erode(full, vs, dist), ref)


@pytest.mark.parametrize("dist", [30.0, 63.0, 64.0, 65.0, 100.0, 130.0])
def test_erode_rows_of_several_words_is_thresholded_edt(dist: float) -> None:
    """Rows of 150 voxels (three 64-bit words) and balls reaching past a word along x
    (1 nm voxels along x): erosion shifts the core bits across words."""
    from scipy import ndimage

    vs = (40.0, 4.0, 1.0)
    core = np.ones((8, 6, 150), bool)
    core[1, 2, 20] = core[1, 4, 90] = core[6, 0, 149] = False
    ref = ndimage.distance_transform_edt(core, sampling=vs) > dist
    assert ref.any() and not ref.all()
    np.testing.assert_array_equal(segment.erode(core, vs, dist), ref)
