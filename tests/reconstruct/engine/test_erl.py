"""ERL from blocks' shares equals `metrics.erl` (and the report's ERL per cell) of the whole
skeleton table: random skeleton forests cut into random blocks, with labels that split, merge
and miss cells, and with block-provisional labels joined only after all blocks; and all three
paths against ERL written out edge by edge."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectome_query.reconstruct import metrics
from connectome_query.reconstruct.engine import erl
from connectome_query.reconstruct.report.errors import erl_per_cell_of


def _forest(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Random trees (cells 1..4), node ids shuffled, each parent an earlier node of the same
    cell (or -1, or an id no node has), places in nm."""
    cell = rng.integers(1, 5, n)
    node = rng.permutation(n * 3)[:n].astype(np.int64) + 10
    parent = np.full(n, -1, np.int64)
    for i in range(n):
        same = np.flatnonzero(cell[:i] == cell[i])
        if len(same) and rng.random() < 0.9:
            parent[i] = node[rng.choice(same)]
        elif rng.random() < 0.3:
            parent[i] = 10**9 + i  # a parent outside the table: no edge
    at = rng.uniform(0, 100, (n, 3))
    return {"row": np.arange(n, dtype=np.int64), "node": node, "parent": parent,
            "cell": cell.astype(np.int64), "at": at}


def _whole(nodes: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(edges as (child, parent) rows, lengths) of the whole table, as
    `scoring.skeleton_arrays` finds them."""
    order = np.argsort(nodes["node"], kind="stable")
    ids = nodes["node"][order]
    j = np.searchsorted(ids, nodes["parent"], side="right") - 1
    has = (j >= 0) & (ids[np.maximum(j, 0)] == nodes["parent"])
    edges = np.stack([np.flatnonzero(has), order[j[has]]], axis=1)
    return edges, np.linalg.norm(nodes["at"][edges[:, 0]] - nodes["at"][edges[:, 1]], axis=1)


def _totals(nodes: dict[str, np.ndarray], block: np.ndarray, n_blocks: int,
            labels: dict[str, np.ndarray]) -> erl.Totals:
    """What the engine does: shares per block, parents asked for, answers, joined."""
    totals = erl.Totals()
    shares = []
    for b in range(n_blocks):
        mine = block == b
        share = erl.block_share({k: v[mine] for k, v in nodes.items()},
                                {k: v[mine] for k, v in labels.items()})
        totals.add(share)
        shares.append(share)
    wanted = totals.parents()
    totals.join([erl.answers(s, wanted) for s in shares])
    return totals


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 120), st.integers(1, 6))
def test_blocks_shares_add_up_to_the_whole_tables_erl(seed: int, n: int,
                                                       n_blocks: int) -> None:
    rng = np.random.default_rng(seed)
    nodes = _forest(rng, n)
    block = rng.integers(0, n_blocks, n)
    edges, lengths = _whole(nodes)
    sids = nodes["cell"]
    seg = rng.integers(0, 7, n).astype(np.uint64)  # splits, merges and background
    truthlike = np.where(rng.random(n) < 0.1, 0, sids + 100).astype(np.uint64)
    # provisional labels: per block, a random local id of the whole-volume label; joined
    # (looked up) only at the end, so one label split over blocks counts as one
    whole_label = rng.integers(0, 4, n).astype(np.uint64)
    prov = np.where(whole_label != 0, (block.astype(np.uint64) << np.uint64(8))
                    + whole_label * np.uint64(7) + (rng.integers(0, 2, n) * 3).astype(np.uint64),
                    0).astype(np.uint64)
    lut = {int(p): int(w) for p, w in zip(prov, whole_label, strict=True)}

    def lookup(a: np.ndarray) -> np.ndarray:
        return np.array([lut.get(int(v), 0) for v in a], np.uint64)

    labels = {"seg": seg, "gt": truthlike, "piece": prov, "base": seg[::-1].copy()}
    totals = _totals(nodes, block, n_blocks, labels)
    for kind, want, look in (("seg", seg, None), ("gt", truthlike, None),
                             ("piece", whole_label, lookup),
                             ("base", labels["base"], None)):
        ref = metrics.erl(sids, edges, lengths, want.astype(np.int64))
        assert totals.erl(kind, look) == pytest.approx(ref, rel=1e-12, abs=1e-12), kind
    ref_cells = erl_per_cell_of(sids, edges, lengths, seg.astype(np.int64))
    got = totals.cells("seg").set_index("cell").loc[ref_cells["cell"]]
    np.testing.assert_allclose(got["cable_nm"], ref_cells["cable_nm"], rtol=1e-12)
    np.testing.assert_allclose(got["erl_nm"], ref_cells["erl_nm"], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(got["merged"], ref_cells["merged"])


def test_an_edge_across_blocks_counts_once_and_a_split_there_breaks_the_run() -> None:
    """Hand-worked: a chain 0-1-2-3 of 1, 2, 3 nm over two blocks (1 | 2 cross)."""
    nodes = {"row": np.arange(4), "node": np.array([5, 6, 7, 8]),
             "parent": np.array([-1, 5, 6, 7]), "cell": np.ones(4, np.int64),
             "at": np.array([[0.0, 0, 0], [1, 0, 0], [3, 0, 0], [6, 0, 0]])}
    block = np.array([0, 0, 1, 1])
    one = np.full(4, 9, np.uint64)
    totals = _totals(nodes, block, 2, {k: one for k in erl.KINDS})
    assert totals.erl("seg") == pytest.approx(36 / 6)  # one run of 6 nm
    split = np.array([9, 9, 4, 4], np.uint64)
    totals = _totals(nodes, block, 2, {k: split for k in erl.KINDS})
    assert totals.erl("seg") == pytest.approx((1 + 9) / 6)  # the crossing edge counts 0
    cells = totals.cells("seg")
    pd.testing.assert_series_equal(cells["cable_nm"], pd.Series([6.0], name="cable_nm"))


def _by_loops(sids: np.ndarray, edges: np.ndarray, lengths: np.ndarray,
              labels: np.ndarray) -> tuple[float, dict[int, tuple[float, float, bool]]]:
    """ERL and, per cell, (cable, ERL, merged) written out edge by edge: a piece is a cell's
    edges inside one segment; a segment holding two cells' nodes counts nothing."""
    cells_in: dict[int, set[int]] = {}
    for s, lab in zip(sids.tolist(), labels.tolist(), strict=True):
        if lab != 0:
            cells_in.setdefault(lab, set()).add(s)
    mergers = {lab for lab, cells in cells_in.items() if len(cells) > 1}
    cable: dict[int, float] = {}
    piece: dict[tuple[int, int], float] = {}
    for (a, b), nm in zip(edges.tolist(), lengths.tolist(), strict=True):
        cell, la, lb = sids[a], labels[a], labels[b]
        cable[cell] = cable.get(cell, 0.0) + nm
        if la == lb != 0 and la not in mergers:
            piece[cell, la] = piece.get((cell, la), 0.0) + nm
    out = {}
    for cell in set(sids.tolist()):
        squares = sum(v * v for (c, _), v in piece.items() if c == cell)
        length = cable.get(cell, 0.0)
        merged = any(lab in mergers for s, lab in zip(sids.tolist(), labels.tolist(),
                                                     strict=True) if s == cell)
        out[cell] = (length, squares / length if length > 0 else 0.0, merged)
    total = sum(cable.values())
    return (sum(v * v for v in piece.values()) / total if total > 0 else 0.0), out


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 40), st.integers(1, 3))
def test_the_three_paths_match_erl_written_out_edge_by_edge(seed: int, n: int,
                                                             n_blocks: int) -> None:
    """`metrics.erl`, the report's `erl_per_cell_of` and the engine's block sums against
    `_by_loops` on small forests."""
    rng = np.random.default_rng(seed)
    nodes = _forest(rng, n)
    edges, lengths = _whole(nodes)
    sids = nodes["cell"]
    seg = rng.integers(0, 5, n).astype(np.int64)
    want, per_cell = _by_loops(sids, edges, lengths, seg)
    assert metrics.erl(sids, edges, lengths, seg) == pytest.approx(want, rel=1e-12, abs=1e-12)
    labels = {k: seg.astype(np.uint64) for k in erl.KINDS}
    totals = _totals(nodes, rng.integers(0, n_blocks, n), n_blocks, labels)
    assert totals.erl("seg") == pytest.approx(want, rel=1e-12, abs=1e-12)
    for cells in (erl_per_cell_of(sids, edges, lengths, seg), totals.cells("seg")):
        assert sorted(cells["cell"]) == sorted(per_cell)
        for row in cells.itertuples():
            cable, run, merged = per_cell[row.cell]
            assert row.cable_nm == pytest.approx(cable, rel=1e-12, abs=1e-12)
            assert row.erl_nm == pytest.approx(run, rel=1e-12, abs=1e-12)
            assert row.merged == merged
