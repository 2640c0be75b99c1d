"""Blockwise segmentation: slabs joined across their faces give the whole volume's partition."""

from __future__ import annotations

import numpy as np
import pytest

from connectome_query.reconstruct import metrics, segment
from tests.support.reconstruct import (
    VS,
    MemoryStore,
    class_affinities,
    random_affs,
    truth_volume,
)


def _blockwise(affs: np.ndarray, slab: int) -> MemoryStore:
    store = MemoryStore(affs.shape[1:])
    reads: list[tuple[int, int]] = []

    def read(z0: int, z1: int) -> np.ndarray:
        reads.append((z0, z1))
        return affs[:, z0:z1]

    n = segment.seeded_segmentation_blockwise(read, affs.shape[1:], VS, store, slab=slab)
    assert all(z1 - z0 <= slab for z0, z1 in reads)  # never more than a slab in memory
    assert n == len(np.unique(store.labels)) - int((store.labels == 0).any())
    return store


def test_blockwise_with_one_slab_is_the_whole_volume_segmentation() -> None:
    affs = random_affs(np.random.default_rng(5), (12, 20, 24))
    affs[affs < 0.3] = 0.0
    store = _blockwise(affs, slab=12)
    np.testing.assert_array_equal(store.labels, segment.seeded_segmentation(affs, VS))


@pytest.mark.parametrize("slab", [7, 16])
def test_blockwise_rejoins_cells_across_slab_faces(slab: int) -> None:
    """On true affinities, slabs of a few sections give the same partition as the whole
    volume at once: every cell cut by a slab face is joined again."""
    affs = class_affinities(truth_volume(1)[0])
    whole = segment.seeded_segmentation(affs, VS)
    store = _blockwise(affs, slab)
    split, merge = metrics.voi(whole, store.labels)
    # pieces under `min_seed` voxels inside one slab stay unlabelled (a few hundredths of
    # a bit); a cell left cut at a face would cost about a tenth of a bit or more
    assert split + merge < 0.05
    # and each segment that crosses a face is one id on both sides of it
    for z in range(slab, affs.shape[1], slab):
        lo, hi = store.labels[z - 1], store.labels[z]
        linked = (whole[z - 1] == whole[z]) & (whole[z] != 0) & (lo != 0) & (hi != 0)
        assert linked.sum() > 50
        assert (lo[linked] == hi[linked]).mean() > 0.99


def test_blockwise_refuses_a_wrong_block() -> None:
    affs = random_affs(np.random.default_rng(0), (8, 10, 10))
    with pytest.raises(ValueError, match=r"read_affs\(0, 4\) returned shape"):
        segment.seeded_segmentation_blockwise(lambda z0, z1: affs, affs.shape[1:], VS,
                                              MemoryStore(affs.shape[1:]), slab=4)
    with pytest.raises(ValueError, match="slab must be at least one section"):
        segment.seeded_segmentation_blockwise(lambda z0, z1: affs, affs.shape[1:], VS,
                                              MemoryStore(affs.shape[1:]), slab=0)
