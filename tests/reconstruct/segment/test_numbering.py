"""Size filter and relabelling of any label volume (fastremap) against numpy references."""

from __future__ import annotations

import numpy as np
import pytest

from connectome_query.reconstruct import segment
from tests.support.reconstruct import keep_large


@pytest.mark.parametrize("dtype", [np.uint32, np.uint64, np.int64])
@pytest.mark.parametrize("min_size", [1, 5, 40])
def test_size_filter_drops_small_segments_and_numbers_by_first_appearance(
        dtype: type, min_size: int) -> None:
    rng = np.random.default_rng(min_size)
    labels = rng.integers(0, 30, (6, 9, 11)).astype(dtype) * 7
    before = labels.copy()
    got = segment.size_filter(labels, min_size)
    assert got.dtype == np.uint64
    np.testing.assert_array_equal(got, keep_large(labels.astype(np.int64), min_size))
    np.testing.assert_array_equal(labels, before)  # the input is left as it was


def test_size_filter_of_huge_ids() -> None:
    labels = np.array([[[5, 5, 2**40], [0, 2**40, 2**40], [3, 0, 5]]], np.uint64)
    np.testing.assert_array_equal(segment.size_filter(labels, 2),
                                  [[[1, 1, 2], [0, 2, 2], [0, 0, 1]]])


def test_size_filter_refuses_negative_labels() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        segment.size_filter(np.array([[[1, -1]]]), 1)


def test_relabel_applies_a_merge_map_in_place() -> None:
    labels = np.array([[[1, 2, 3], [4, 0, 2]]], np.uint64)
    out = segment.relabel(labels, {2: 1, 4: 3})
    assert out is labels
    np.testing.assert_array_equal(labels, [[[1, 1, 3], [3, 0, 1]]])
    np.testing.assert_array_equal(segment.relabel(labels, {}), [[[1, 1, 3], [3, 0, 1]]])
