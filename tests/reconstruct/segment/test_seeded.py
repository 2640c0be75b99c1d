"""Our segmentation: quality on true and leaky affinities, and equality with its stages done
the plain way one by one."""

from __future__ import annotations

import numpy as np
import pytest

from connectome_query.reconstruct import boundary, scoring, segment
from tests.support.reconstruct import (
    VS,
    class_affinities,
    noisy_cells,
    reference_segmentation,
    truth_volume,
)


@pytest.mark.parametrize("seed", [1, 3])
def test_true_affinities_give_high_nerl(seed: int) -> None:
    s, truth = truth_volume(seed)
    seg = segment.seeded_segmentation(class_affinities(s), VS)
    sc = scoring.segmentation_scores(seg, truth, VS)
    assert sc["voi_merge"] < 0.15


def test_leaky_boundaries_break_threshold_cc_not_ours() -> None:
    s, truth = truth_volume(1)
    affs = boundary.true_affinities(s.labels)
    rng = np.random.default_rng(0)
    # punch single-voxel holes into boundaries between different cells and add noise
    noisy = np.clip(affs + rng.normal(0, 0.15, affs.shape).astype(np.float32), 0, 1)
    holes = (affs < 0.5) & (rng.random(affs.shape) < 0.03)
    noisy[holes] = 0.95
    # with noise of sd 0.15 on every affinity, growth must accept edges down to 0.5 (the
    # defaults are set for the network's sharper predictions)
    params = segment.SegParams(seed_threshold=0.7, grow_threshold=0.5)
    ours = scoring.segmentation_scores(segment.seeded_segmentation(noisy, VS, params),
                                       truth, VS)
    base = scoring.segmentation_scores(segment.threshold_components(noisy), truth, VS)
    assert base["voi_merge"] > ours["voi_merge"] + 0.5
    assert base["arand"] > ours["arand"] + 0.2


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("params", [
    segment.SegParams(min_size=20),
    segment.SegParams(seed_threshold=0.7, grow_threshold=0.5, seed_distance_nm=0.0,
                      min_seed=1, min_size=1, grow_layers=1, prior_faces=2.0),
    segment.SegParams(seed_threshold=0.75, grow_threshold=0.65, seed_distance_nm=30.0,
                      merge_threshold=0.6, min_size=5)])
def test_seeded_segmentation_matches_composed_reference(seed: int,
                                                        params: segment.SegParams) -> None:
    """The whole segmentation (one pass over the voxels, then the active ones only)
    equals its stages done one by one the plain way, on cells with noisy, leaky
    boundaries (where every knob above changes the result)."""
    affs = noisy_cells((6, 15, 16), seed)
    got = segment.seeded_segmentation(affs, VS, params)
    ref = reference_segmentation(affs, params)
    assert got.max() > 1  # several segments: the test sees merges and sizes
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("shape", [(5, 1, 17), (4, 9, 1), (1, 12, 2), (3, 7, 3)])
def test_thin_volumes_match_composed_reference(shape: tuple[int, int, int]) -> None:
    """Rows, sections or volumes one or two voxels thick: the scan kernel does a row's
    first and last voxels apart from the others, and a word of flags can span rows. The
    affinities across the volume's faces (to no voxel) are strong and must count for
    nothing, as a network's output there would."""
    p = segment.SegParams(seed_threshold=0.7, grow_threshold=0.5, seed_distance_nm=0.0,
                          min_seed=1, min_size=1)
    for seed in range(3):
        affs = noisy_cells(shape, seed)
        affs[0, 0] = affs[1, :, 0] = affs[2, :, :, 0] = 0.99
        np.testing.assert_array_equal(segment.seeded_segmentation(affs, VS, p),
                                      reference_segmentation(affs, p))


def test_seed_threshold_below_growth_is_refused() -> None:
    with pytest.raises(ValueError, match=r"seed_threshold \(0.5\) must be at least"):
        segment.SegParams(seed_threshold=0.5, grow_threshold=0.7)
