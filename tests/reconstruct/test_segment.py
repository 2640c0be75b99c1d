"""Segmentation algorithms on affinities from ground truth (pure logic)."""

from __future__ import annotations

import numpy as np
import pytest

from reconstruct import boundary, pipeline, segment, synth

VS = (40.0, 16.0, 16.0)


def _truth(seed: int) -> tuple[synth.Slab, dict]:
    plan = synth.make_plan(synth.SynthConfig((64, 64, 64), VS, "clean", seed))
    s = synth.render(plan)
    vs = np.array(VS)
    vox = np.clip(np.round(plan.stamps[:, :3] / vs).astype(int), 0, 63)
    inside = np.all((plan.stamps[:, :3] / vs >= -0.5) & (plan.stamps[:, :3] / vs < 63.5), axis=1)
    lab_at = np.where(inside, s.labels[vox[:, 0], vox[:, 1], vox[:, 2]].astype(np.int64), 0)
    import pandas as pd

    sk = pd.DataFrame(synth.truth_skeleton_nodes(plan, lab_at))
    return s, {"segmentation": s.labels, "skeletons": sk}


def test_vcg_bits_follow_waterz_layout() -> None:
    affs = np.zeros((3, 2, 2, 2), np.float32)
    affs[2, :, :, 1] = 1.0  # link x=0 and x=1 only
    lab = segment.threshold_components(affs, 0.5, min_size=1)
    assert len(np.unique(lab)) == 4  # four 2-voxel pairs, no background
    assert (lab[:, :, 0] == lab[:, :, 1]).all()


@pytest.mark.parametrize("seed", [1, 3])
def test_true_affinities_give_high_nerl(seed: int) -> None:
    s, truth = _truth(seed)
    cls = boundary.voxel_classes(s.labels, s.clefts != 0)
    probs = np.stack([(cls == k).astype(np.float32) for k in range(boundary.N_CLASSES)])
    affs = boundary.affinities_from_probabilities(probs)
    seg = segment.seeded_segmentation(affs, VS)
    sc = pipeline.segmentation_scores(seg, truth, VS)
    assert sc["voi_merge"] < 0.15


def test_leaky_boundaries_break_threshold_cc_not_ours() -> None:
    s, truth = _truth(1)
    affs = boundary.true_affinities(s.labels)
    rng = np.random.default_rng(0)
    # punch single-voxel holes into boundaries between different cells and add noise
    noisy = np.clip(affs + rng.normal(0, 0.15, affs.shape).astype(np.float32), 0, 1)
    holes = (affs < 0.5) & (rng.random(affs.shape) < 0.03)
    noisy[holes] = 0.95
    # with noise of sd 0.15 on every affinity, growth must accept edges down to 0.5 (the
    # defaults are set for the network's sharper predictions)
    params = segment.SegParams(seed_threshold=0.7, grow_threshold=0.5)
    ours = pipeline.segmentation_scores(segment.seeded_segmentation(noisy, VS, params),
                                        truth, VS)
    base = pipeline.segmentation_scores(segment.threshold_components(noisy), truth, VS)
    assert base["voi_merge"] > ours["voi_merge"] + 0.5
    assert base["arand"] > ours["arand"] + 0.2


def test_agglomerate_mean_affinity() -> None:
    pairs = np.array([[1, 2], [2, 3], [1, 3]], np.uint64)
    sums = np.array([9.0, 1.0, 0.9])
    counts = np.array([10, 10, 1])
    m = segment.agglomerate(pairs, sums, counts, 0.5)
    # 1-2 merge (0.9); then {1,2}-3 mean = (1.0 + 0.9) / 11 < 0.5: stays apart
    assert m.get(2, 2) == m.get(1, 1) and 3 not in m
