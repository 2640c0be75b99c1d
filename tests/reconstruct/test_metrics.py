"""Metric implementations against independent computations."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment
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


def _dense_match(pred: np.ndarray, true: np.ndarray, ok: np.ndarray,
                 tol: float) -> list[tuple[int, int]]:
    """The all-pairs assignment (independent reference; memory grows with the product)."""
    d = np.linalg.norm(pred[:, None, :] - true[None, :, :], axis=2)
    valid = ok & (d <= tol)
    r, c = linear_sum_assignment(np.where(valid, d, 1e9))
    return [(int(i), int(j)) for i, j in zip(r, c, strict=True) if valid[i, j]]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 40), st.integers(0, 40))
def test_synapse_matching_equals_the_all_pairs_assignment(seed: int, n_pred: int,
                                                          n_true: int) -> None:
    """Crowded points (groups of candidates competing for the same partner), some pairs
    forbidden: as many matches as the dense assignment, at the same total distance."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 2000, (4, 3))
    pred = centres[rng.integers(0, 4, n_pred)] + rng.normal(0, 80, (n_pred, 3))
    true = centres[rng.integers(0, 4, n_true)] + rng.normal(0, 80, (n_true, 3))
    pred_pre, true_pre = rng.integers(1, 3, n_pred), rng.integers(1, 3, n_true)
    ok = pred_pre[:, None] == true_pre[None, :]
    for allowed in (None, lambda i, j: pred_pre[i] == true_pre[j]):
        want = _dense_match(pred, true, ok if allowed else np.ones_like(ok), 120.0)
        got = metrics._match(pred, true, 120.0, allowed)
        assert len(got) == len(want)
        assert len({i for i, _ in got}) == len({j for _, j in got}) == len(got)

        def total(pairs: list[tuple[int, int]]) -> float:
            return sum(float(np.linalg.norm(pred[i] - true[j])) for i, j in pairs)
        assert total(got) == pytest.approx(total(want), rel=1e-9, abs=1e-6)
        assert all(np.linalg.norm(pred[i] - true[j]) <= 120.0 for i, j in got)
        if allowed is not None:
            assert all(pred_pre[i] == true_pre[j] for i, j in got)


def test_synapse_matching_memory_grows_with_nearby_pairs_only() -> None:
    """30,000 synapses a side (a dense matrix would be 7 GB a copy) match in small groups."""
    rng = np.random.default_rng(1)
    n = 30_000
    true = rng.uniform(0, 1, (n, 3)) * np.array([20_000.0, 20_000.0, 15_000.0])
    pred = true + rng.normal(0, 60, (n, 3))
    ids = np.arange(n) % 97 + 1
    sc = metrics.synapse_scores(pred, ids, ids, true, ids, ids, {i: i for i in range(98)})
    assert sc.n_true == n and sc.true_positives > 0.9 * n


def test_erl_keeps_segment_ids_of_flywire_range_apart():
    """Two cells in two segments whose ids differ by one near 7e17 (beyond float64's exact
    integers): no merger, each cell whole, as with small ids."""
    big = np.uint64(700_000_000_000_000_000)
    cells = np.array([1, 1, 2, 2], np.int64)
    edges = np.array([[0, 1], [2, 3]])
    lengths = np.array([10.0, 30.0])
    expected = (10.0**2 + 30.0**2) / 40.0
    for labels in (np.array([5, 5, 6, 6], np.uint64),
                   np.array([big, big, big + np.uint64(1), big + np.uint64(1)], np.uint64)):
        assert metrics.erl(cells, edges, lengths, labels) == pytest.approx(expected)
        assert not metrics.erl_cells_of_edges(cells, edges, lengths, labels)["merged"].any()
