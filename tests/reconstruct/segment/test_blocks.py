"""Our segmentation block by block (three passes, stitched) gives the whole volume's labels,
voxel for voxel, whatever the blocks."""

from __future__ import annotations

import numpy as np
import pytest

from connectome_query.reconstruct import boundary, segment
from connectome_query.reconstruct.segment import blocks, stitch
from tests.support.reconstruct import (
    VS,
    class_affinities,
    noisy_cells,
    segment_in_blocks,
    truth_volume,
)


@pytest.fixture(scope="module")
def small_affs() -> np.ndarray:
    """Affinities of a 24 x 48 x 40 piece of a synthetic volume holding ten cells' pieces."""
    return np.ascontiguousarray(class_affinities(truth_volume(1)[0])[:, 20:44, 8:56, 12:52])


@pytest.mark.parametrize("block", [(24, 48, 40), (7, 13, 17), (5, 9, 40), (1, 48, 40),
                                   (24, 1, 40), (24, 48, 1), (3, 48, 7)])
def test_blocks_give_the_whole_volume_labels(small_affs: np.ndarray,
                                             block: tuple[int, int, int]) -> None:
    """Blocks that do not divide the volume, and blocks one voxel thick along each axis."""
    p = segment.SegParams(min_size=20)  # a small volume: keep its small pieces of cells
    whole = segment.seeded_segmentation(small_affs, VS, p)
    assert whole.max() > 3
    np.testing.assert_array_equal(segment_in_blocks(small_affs, block, p), whole)


@pytest.mark.parametrize("seed", [2, 5])
def test_blocks_on_noisy_leaky_affinities(seed: int) -> None:
    """Noise and leaks through cell boundaries: merges and rescued pieces cross faces."""
    affs = noisy_cells((20, 40, 44), seed)
    whole = segment.seeded_segmentation(affs, VS)
    for block in [(7, 13, 17), (3, 5, 44)]:
        np.testing.assert_array_equal(segment_in_blocks(affs, block), whole)


def test_a_cell_across_a_corner_of_eight_blocks() -> None:
    """A ball centred on the corner shared by 8 blocks is one segment, as in one piece."""
    zz, yy, xx = np.mgrid[:16, :32, :32]
    lab = (((zz - 8) * 2.5) ** 2 + (yy - 16) ** 2 + (xx - 16) ** 2 < 12**2).astype(np.uint64)
    lab[(lab == 0) & (xx > 24)] = 2  # a second cell touching it
    affs = boundary.true_affinities(lab)
    whole = segment.seeded_segmentation(affs, VS)
    got = segment_in_blocks(affs, (8, 16, 16))
    np.testing.assert_array_equal(got, whole)
    assert len(np.unique(got[lab == 1])) == 1 and got[8, 16, 16] != 0


def test_empty_blocks_and_an_empty_volume() -> None:
    affs = noisy_cells((12, 24, 24), 1)
    affs[:, :, :, 12:] = 0.0  # half the volume holds nothing
    whole = segment.seeded_segmentation(affs, VS)
    np.testing.assert_array_equal(segment_in_blocks(affs, (6, 12, 12)), whole)
    empty = np.zeros((3, 8, 16, 16), np.float32)
    assert not segment_in_blocks(empty, (4, 8, 8)).any()


@pytest.mark.slow
@pytest.mark.parametrize("block", [(16, 32, 32), (7, 13, 17)])
def test_blocks_on_a_64_cube(block: tuple[int, int, int]) -> None:
    affs = class_affinities(truth_volume(1)[0])
    np.testing.assert_array_equal(segment_in_blocks(affs, block),
                                  segment.seeded_segmentation(affs, VS))


def test_halos_cover_the_erosion_ball_and_the_growth() -> None:
    p = segment.SegParams()
    h = blocks.halos(p, VS)
    assert h.seeds == (1, 2, 2)  # 20 nm: one pixel in-plane, none across sections; +1
    assert h.growth == (p.grow_layers + 2,) * 3
    assert h.fragments == (max(p.min_seed, 2) + 1,) * 3


def test_numbering_joins_across_faces_and_counts_sizes_over_blocks() -> None:
    """Block 0's component 1 and block 1's component 2 are one piece of 3 + 2 voxels; with
    min_size 4 it is kept and block 1's component 1 (3 voxels) is dropped."""
    sizes = [np.array([3, 1]), np.array([3, 2])]
    first = [np.array([10, 4]), np.array([30, 50])]
    pairs = np.array([[stitch.provisional(0, np.array([1]))[0],
                       stitch.provisional(1, np.array([2]))[0]]])
    num = stitch.number(sizes, first, pairs, 4, offset=7)
    got = num.lookup(np.concatenate([stitch.provisional(0, np.array([0, 1, 2])),
                                     stitch.provisional(1, np.array([1, 2]))]))
    assert got.tolist() == [0, 8, 0, 0, 8]
    assert num.count == 1
