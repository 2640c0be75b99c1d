"""The joint solve of a stack's meshes against flows made from known maps."""

from __future__ import annotations

import itertools

import numpy as np

from connectome_query.reconstruct.align import elastic, flow, stack_solve, warp

GRID, STRIDE = (7, 8), 32


def _affine_maps(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Node positions (n, gy, gx, 2) of maps p -> p + A_z (p - c) + t_z whose mean over the
    sections is the identity, and the matrices (n, 2, 3) [A_z | t_z]."""
    rng = np.random.default_rng(seed)
    lin = rng.normal(0, 0.02, (n, 2, 2))
    shift = rng.normal(0, 4.0, (n, 2))
    lin -= lin.mean(0)
    shift -= shift.mean(0)
    ident = warp.identity_nodes(GRID, STRIDE)
    centre = ident.reshape(-1, 2).mean(0)
    nodes = ident[None] + np.einsum("zab,yxb->zyxa", lin, ident - centre) + shift[:, None, None]
    return nodes, np.concatenate([lin, shift[..., None]], axis=-1)


def _true_flow(nodes: np.ndarray, z: int, r: int) -> flow.Flow:
    """The flow from r to z on r's grid: a point y of r lies at nodes_z(nodes_r^-1(y)) in z
    (both maps affine). The outer ring of nodes has no flow (as at a section's edge)."""
    ident = warp.identity_nodes(GRID, STRIDE).reshape(-1, 2)
    design = np.column_stack([ident, np.ones(len(ident))])
    coef_r, *_ = np.linalg.lstsq(design, nodes[r].reshape(-1, 2), rcond=None)
    coef_z, *_ = np.linalg.lstsq(design, nodes[z].reshape(-1, 2), rcond=None)
    # y = p coef_r[:2] + coef_r[2]  ->  p = (y - coef_r[2]) coef_r[:2]^-1
    p = (ident - coef_r[2]) @ np.linalg.inv(coef_r[:2])
    yx = (np.column_stack([p, np.ones(len(p))]) @ coef_z - ident).reshape(*GRID, 2)
    yx[[0, -1]] = np.nan
    yx[:, [0, -1]] = np.nan
    return flow.Flow(yx.astype(np.float64), np.ones(GRID), STRIDE)


def _flows(nodes: np.ndarray, usable: np.ndarray, reach: int = 3
           ) -> dict[tuple[int, int], flow.Flow]:
    zs = np.flatnonzero(usable)
    return {(int(z), int(r)): _true_flow(nodes, z, r)
            for i, z in enumerate(zs) for r in zs[max(i - reach, 0):i]}


def test_true_flows_give_the_true_maps_from_a_wrong_start():
    """Affine section maps cost no bending, so exact flows pin every section (up to the
    mean over sections, which the gauge fixes at the identity) from a start several px off;
    a missing section takes the map of the one before it. Next to the flowless ring the flow
    is read over its good nodes only, which is not exact for an affine field: a few tenths of
    a pixel there."""
    nodes, _ = _affine_maps(8, 1)
    usable = np.ones(8, bool)
    usable[4] = False
    rng = np.random.default_rng(2)
    start = nodes + rng.normal(0, 3.0, nodes.shape)
    config = stack_solve.StackSolveConfig(shape=0.0, iterations=3)
    x = stack_solve.solve_stack(start, _flows(nodes, usable), usable, STRIDE, 4.0, config)
    kept = np.flatnonzero(usable)
    # the gauge holds the mean of the solved sections at the identity: compare up to the
    # true maps' mean over the same sections
    truth = nodes[kept] - nodes[kept].mean(0) + warp.identity_nodes(GRID, STRIDE)
    err = np.linalg.norm(x[kept] - truth, axis=-1)
    assert np.sqrt(np.mean(err**2)) < 0.1 and err.max() < 0.5, (np.sqrt(np.mean(err**2)),
                                                                 err.max())
    assert np.linalg.norm(start[kept] - truth, axis=-1).mean() > 2.0  # the start was off
    np.testing.assert_array_equal(x[4], x[3])


def test_the_shape_term_pulls_consecutive_sections_to_one_shape():
    """With a strong shape term the sections' node-to-neighbour vectors come closer to each
    other than the true maps' are: the term trades their own shapes for agreement."""
    nodes, coef = _affine_maps(6, 3)
    usable = np.ones(6, bool)
    fl = _flows(nodes, usable)
    free = stack_solve.solve_stack(nodes, fl, usable, STRIDE, 4.0,
                                   stack_solve.StackSolveConfig(shape=0.0))
    held = stack_solve.solve_stack(nodes, fl, usable, STRIDE, 4.0,
                                   stack_solve.StackSolveConfig(shape=100.0))

    def spread(x: np.ndarray) -> float:
        d = np.diff(x, axis=2)  # neighbour vectors along x
        return float(np.std(d, axis=0).mean())

    assert spread(held) < 0.5 * spread(free)
    assert abs(spread(free) - spread(nodes)) < 0.05 * spread(nodes)
    assert np.abs(coef[:, :, :2]).max() > 0.01  # the true shapes differ


def test_sections_in_no_flow_keep_their_start():
    nodes, _ = _affine_maps(5, 4)
    usable = np.ones(5, bool)
    fl = {k: v for k, v in _flows(nodes, usable).items() if 0 not in k}
    x = stack_solve.solve_stack(nodes + 1.0, fl, usable, STRIDE, 4.0)
    np.testing.assert_allclose(x[0], nodes[0] + 1.0)


def _align_random(n: int, cfg: elastic.AlignConfig) -> elastic.Maps:
    rng = np.random.default_rng(5)
    stack = rng.standard_normal((n, 96, 96)).astype(np.float32)
    ones = np.ones(n, bool)
    return elastic.align_stack(lambda z: stack[z], lambda z: np.zeros((96, 96), bool), n,
                               ones, ones, (96, 96), cfg)


def test_a_stack_too_big_for_the_joint_solve_keeps_the_sequential_maps_and_says_so():
    assert stack_solve.window(16, (8, 8)) == 16 and stack_solve.window(512, (64, 64)) is None

    def run(cfg: elastic.AlignConfig) -> elastic.Maps:
        return _align_random(4, cfg)

    cfg = elastic.AlignConfig(stride=32, patch=64, z_trend_degree=0)
    sequential = run(elastic.AlignConfig(stride=32, patch=64, z_trend_degree=0,
                                         stack=stack_solve.StackSolveConfig(enabled=False)))
    skipped = run(elastic.AlignConfig(stride=32, patch=64, z_trend_degree=0,
                                      stack=stack_solve.StackSolveConfig(max_cost=0.0)))
    np.testing.assert_array_equal(skipped.nodes, sequential.nodes)
    assert any("joint solve" in n for n in skipped.notes)
    assert not any("joint solve" in n for n in run(cfg).notes)


def test_window_sizes_follow_the_cost_limit():
    assert stack_solve.window(16, (8, 8)) == 16  # all at once
    per = stack_solve.window(512, (32, 32))
    assert per is not None and per < 512
    assert per * float(32 * 32) ** 2 <= stack_solve.MAX_COST
    assert (per + 1) * float(32 * 32) ** 2 > stack_solve.MAX_COST


def test_windows_cover_every_section_and_hold_the_ones_just_before():
    zs = np.array([0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 12, 13])  # 3 and 11 not usable
    wins = stack_solve._windows(zs, 5, 3)
    assert len(wins) > 1
    assert set(np.concatenate([f for f, _ in wins]).tolist()) == set(zs.tolist())
    for (free, _), (nxt, _) in itertools.pairwise(wins):
        assert len(np.intersect1d(free, nxt)) >= 1  # consecutive windows overlap
    for free, held in wins[1:]:
        assert len(held) and held.max() < free[0] and held.min() >= free[0] - 3
        assert set(held.tolist()) <= set(zs.tolist())


def test_a_stack_solved_in_windows_recovers_the_true_maps_as_a_whole_solve_does():
    """Twelve sections of affine maps (no bending cost), exact flows, a start several px off:
    in windows of four sections, each held to the sections an earlier window solved, the
    answer is the whole solve's to a small fraction of a pixel, and both are the truth up to
    the gauge."""
    nodes, _ = _affine_maps(12, 6)
    usable = np.ones(12, bool)
    rng = np.random.default_rng(7)
    start = nodes + rng.normal(0, 3.0, nodes.shape)
    fl = _flows(nodes, usable)
    config = stack_solve.StackSolveConfig(shape=0.0, iterations=3)
    whole = stack_solve.solve_stack(start, fl, usable, STRIDE, 4.0, config)
    windowed = stack_solve.solve_stack(start, fl, usable, STRIDE, 4.0, config, window=4)
    truth = nodes - nodes.mean(0) + warp.identity_nodes(GRID, STRIDE)
    for x in (whole, windowed):
        err = np.linalg.norm(x - truth, axis=-1)
        assert np.sqrt(np.mean(err**2)) < 0.15 and err.max() < 0.6, (np.sqrt(np.mean(err**2)),
                                                                     err.max())
    assert np.linalg.norm(start - truth, axis=-1).mean() > 2.0


def test_a_stack_solved_in_windows_says_so():
    nodes = int(np.prod(flow.grid_shape((96, 96), 32)))
    cost = 4 * float(nodes) ** 2  # windows of 4 sections
    maps = _align_random(7, elastic.AlignConfig(
        stride=32, patch=64, z_trend_degree=0,
        stack=stack_solve.StackSolveConfig(max_cost=cost)))
    assert any("windows of 4 sections" in n for n in maps.notes), maps.notes
    whole = _align_random(7, elastic.AlignConfig(stride=32, patch=64, z_trend_degree=0))
    assert not any("windows" in n for n in whole.notes)
