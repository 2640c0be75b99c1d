import numpy as np
import pytest

from connectome_query.reconstruct.lattice import neighbour_slices


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_neighbour_slices_pair_each_voxel_with_its_minus_one_neighbour(axis: int) -> None:
    a = np.random.default_rng(axis).integers(0, 100, (4, 5, 6))
    lo, hi = neighbour_slices(axis)
    np.testing.assert_array_equal(a[hi] - a[lo], np.diff(a, axis=axis))


def test_neighbour_slices_refuse_an_axis_outside_the_array() -> None:
    with pytest.raises(ValueError, match="axis 3"):
        neighbour_slices(3)
