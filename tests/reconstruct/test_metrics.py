"""Metric implementations against independent computations."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.metrics import adapted_rand_error, variation_of_information

from connectome_query.reconstruct import metrics


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000))
def test_voi_and_arand_match_skimage(seed: int) -> None:
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 4, (6, 7, 8)).astype(np.uint64)
    pred = rng.integers(0, 5, (6, 7, 8)).astype(np.uint64)
    split, merge = metrics.voi(gt, pred)
    sk = variation_of_information(gt, pred, ignore_labels=[0])
    assert split == pytest.approx(sk[0], abs=1e-9)
    assert merge == pytest.approx(sk[1], abs=1e-9)
    if (gt != 0).sum() > 1:
        are = adapted_rand_error(gt, pred, ignore_labels=[0])[0]
        assert metrics.adapted_rand(gt, pred) == pytest.approx(are, abs=1e-9)


def test_voi_perfect_and_hand_worked() -> None:
    gt = np.array([1, 1, 2, 2], np.uint64)
    assert metrics.voi(gt, gt) == (0.0, 0.0)
    # one segment covering both objects: merge = H(gt | pred) = 1 bit, split = 0
    split, merge = metrics.voi(gt, np.array([5, 5, 5, 5], np.uint64))
    assert split == pytest.approx(0.0) and merge == pytest.approx(1.0)
    # each object cut in half: split = 1 bit
    split, merge = metrics.voi(gt, np.array([1, 2, 3, 4], np.uint64))
    assert split == pytest.approx(1.0) and merge == pytest.approx(0.0)


def test_erl_hand_worked() -> None:
    # skeleton A: chain of 4 nodes, edges of 1, 2, 3 nm; skeleton B: 2 nodes, edge 4 nm
    sids = np.array([1, 1, 1, 1, 2, 2])
    edges = np.array([[0, 1], [1, 2], [2, 3], [4, 5]])
    lengths = np.array([1.0, 2.0, 3.0, 4.0])
    total = 10.0
    perfect = np.array([7, 7, 7, 7, 9, 9])
    assert metrics.erl(sids, edges, lengths, perfect) == pytest.approx((6**2 + 4**2) / total)
    # split A between nodes 1 and 2: runs 1 and 3, the 2 nm edge counts zero
    split = np.array([7, 7, 8, 8, 9, 9])
    assert metrics.erl(sids, edges, lengths, split) == pytest.approx((1 + 9 + 16) / total)
    # segment 7 also holds a node of B: a merger, so all its edges count zero
    merged = np.array([7, 7, 7, 7, 7, 9])
    assert metrics.erl(sids, edges, lengths, merged) == pytest.approx(0.0)
    # background nodes break runs
    bg = np.array([7, 0, 7, 7, 9, 9])
    assert metrics.erl(sids, edges, lengths, bg) == pytest.approx((9 + 16) / total)


def test_synapse_scores_need_right_partners() -> None:
    true_xyz = np.array([[0.0, 0, 0], [1000.0, 0, 0]])
    true_pre = np.array([1, 2])
    true_post = np.array([2, 1])
    pred_xyz = np.array([[10.0, 0, 0], [1010.0, 0, 0], [5000.0, 0, 0]])
    pred_pre = np.array([11, 11, 12])
    pred_post = np.array([12, 12, 11])
    mapping = {11: 1, 12: 2}
    sc = metrics.synapse_scores(pred_xyz, pred_pre, pred_post, true_xyz, true_pre, true_post,
                                mapping, tolerance_nm=100)
    assert sc.true_positives == 1  # the second has swapped partners, the third is far
    assert sc.precision == pytest.approx(1 / 3)
    assert sc.recall == pytest.approx(1 / 2)
    assert sc.location_f1 == pytest.approx(2 * (2 / 3) * 1 / (2 / 3 + 1))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 4))
def test_tables_of_parts_add_up_to_the_whole_volume_scores(seed: int, cuts: int) -> None:
    """VOI and ARAND from contingency tables of slabs, added, equal skimage's on the whole
    (what blockwise scoring relies on)."""
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 4, (8, 7, 6)).astype(np.uint64)
    pred = rng.integers(0, 5, (8, 7, 6)).astype(np.uint64)
    edges = np.linspace(0, 8, cuts + 1).astype(int)
    table = metrics.add_tables([metrics.contingency(gt[a:b], pred[a:b])
                                for a, b in itertools.pairwise(edges)])
    for got, want in zip(table, metrics.contingency(gt, pred), strict=True):
        np.testing.assert_array_equal(got, want)
    split, merge = metrics.voi_of_table(*table)
    sk = variation_of_information(gt, pred, ignore_labels=[0])
    assert split == pytest.approx(sk[0], abs=1e-9)
    assert merge == pytest.approx(sk[1], abs=1e-9)
    assert metrics.adapted_rand_of_table(*table) == pytest.approx(
        metrics.adapted_rand(gt, pred), abs=1e-9)


def _dense_matching(pred: np.ndarray, true: np.ndarray, ok: np.ndarray,
                    tolerance: float) -> list[tuple[int, int]]:
    """The reference: one assignment over the full pred x true distance matrix."""
    from scipy.optimize import linear_sum_assignment

    if len(pred) == 0 or len(true) == 0:
        return []
    d = np.linalg.norm(pred[:, None, :] - true[None, :, :], axis=2)
    valid = ok & (d <= tolerance)
    r, c = linear_sum_assignment(np.where(valid, d, 1e9))
    return sorted((int(i), int(j)) for i, j in zip(r, c, strict=True) if valid[i, j])


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 60), st.integers(0, 60),
       st.sampled_from([50.0, 250.0, 600.0]))
def test_synapse_matching_equals_one_dense_assignment(seed: int, n_pred: int, n_true: int,
                                                      tolerance: float) -> None:
    """The matching solved per group of nearby synapses gives the dense assignment's pairs
    (clustered points, so groups hold several synapses each)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 3000, (4, 3))
    true = centres[rng.integers(0, 4, n_true)] + rng.normal(0, 300, (n_true, 3))
    pred = centres[rng.integers(0, 4, n_pred)] + rng.normal(0, 300, (n_pred, 3))
    true_pre, true_post = rng.integers(1, 4, n_true), rng.integers(1, 4, n_true)
    pred_pre, pred_post = rng.integers(11, 14, n_pred), rng.integers(11, 14, n_pred)
    mapping = {11: 1, 12: 2, 13: 3}
    sc = metrics.synapse_scores(pred, pred_pre, pred_post, true, true_pre, true_post, mapping,
                                tolerance_nm=tolerance)
    mp = np.array([mapping[int(s)] for s in pred_pre], np.int64).reshape(-1)
    mq = np.array([mapping[int(s)] for s in pred_post], np.int64).reshape(-1)
    ok = (mp[:, None] == true_pre[None, :]) & (mq[:, None] == true_post[None, :])
    want = _dense_matching(pred, true, ok, tolerance)
    everything = _dense_matching(pred, true, np.ones((n_pred, n_true), bool), tolerance)
    assert sc.true_positives == len(want)
    assert sc.location_f1 == pytest.approx(
        metrics._f1(len(everything), n_pred, n_true)[2])
    i, j, d = metrics._candidates(pred.reshape(-1, 3), true.reshape(-1, 3), tolerance)
    keep = ok[i, j]
    assert metrics._match(n_pred, n_true, i[keep], j[keep], d[keep]) == want
    assert metrics._match(n_pred, n_true, i, j, d) == everything


def test_synapse_matching_memory_grows_with_nearby_pairs_only() -> None:
    """30,000 synapses a side (a dense matrix would be 7 GB a copy) match in small groups."""
    rng = np.random.default_rng(1)
    n = 30_000
    true = rng.uniform(0, 1, (n, 3)) * np.array([20_000.0, 20_000.0, 15_000.0])
    pred = true + rng.normal(0, 60, (n, 3))
    ids = np.arange(n) % 97 + 1
    sc = metrics.synapse_scores(pred, ids, ids, true, ids, ids, {i: i for i in range(98)})
    assert sc.n_true == n and sc.true_positives > 0.9 * n
