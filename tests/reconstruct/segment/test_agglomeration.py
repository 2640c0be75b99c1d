"""Greedy mean-affinity agglomeration against a hand-worked case and a naive greedy loop."""

from __future__ import annotations

import numpy as np
import pytest

from connectome_query.reconstruct import segment


def test_agglomerate_mean_affinity() -> None:
    pairs = np.array([[1, 2], [2, 3], [1, 3]], np.uint64)
    sums = np.array([9.0, 1.0, 0.9])
    counts = np.array([10, 10, 1])
    m = segment.agglomerate(pairs, sums, counts, 0.5)
    # 1-2 merge (0.9); then {1,2}-3 mean = (1.0 + 0.9) / 11 < 0.5: stays apart
    assert m.get(2, 2) == m.get(1, 1) and 3 not in m


def _partition(mapping: dict[int, int], nodes: set[int]) -> set[frozenset[int]]:
    groups: dict[int, set[int]] = {}
    for n in nodes:
        groups.setdefault(mapping.get(n, n), set()).add(n)
    return {frozenset(g) for g in groups.values()}


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("prior", [0.0, 2.0])
def test_agglomerate_matches_naive_greedy(seed: int, prior: float) -> None:
    rng = np.random.default_rng(seed)
    n = 12
    cand = [(a, b) for a in range(1, n + 1) for b in range(a + 1, n + 1)]
    pick = rng.choice(len(cand), 30, replace=False)
    pairs = np.array([cand[i] for i in pick], np.uint64)
    counts = rng.integers(1, 20, len(pairs))
    sums = counts * rng.random(len(pairs))
    got = _partition(segment.agglomerate(pairs, sums, counts, 0.4, prior), set(range(1, n + 1)))
    # naive: recompute every cluster pair's mean from the original edges, merge the best
    cluster = {i: i for i in range(1, n + 1)}
    while True:
        tot: dict[tuple[int, int], list[float]] = {}
        for (a, b), s, c in zip(pairs.tolist(), sums.tolist(), counts.tolist(), strict=True):
            ca, cb = cluster[a], cluster[b]
            if ca != cb:
                t = tot.setdefault((min(ca, cb), max(ca, cb)), [0.0, 0])
                t[0] += s
                t[1] += c
        if not tot:
            break
        (ca, cb), (s, c) = max(tot.items(), key=lambda kv: kv[1][0] / (kv[1][1] + prior))
        if s / (c + prior) <= 0.4:
            break
        for k, v in cluster.items():
            if v == cb:
                cluster[k] = ca
    assert got == _partition(cluster, set(range(1, n + 1)))
