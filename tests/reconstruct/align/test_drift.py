"""The drift estimate against simulated shifts and drift, and its covariance against the
explicit sum of steps."""

from __future__ import annotations

import numpy as np
import pytest

from connectome_query.reconstruct.align import drift, warp


def _simulate(rng: np.random.Generator, nz: int, step: float, rho: float) -> np.ndarray:
    """(nz, 2) drift: the running sum of AR(1) steps of sd `step`, starting at 0."""
    steps = np.zeros((nz, 2))
    steps[1] = rng.normal(0, step, 2)
    for z in range(2, nz):
        steps[z] = rho * steps[z - 1] + rng.normal(0, step * np.sqrt(1 - rho**2), 2)
    return np.cumsum(steps, axis=0)


def test_drift_covariance_is_the_covariance_of_summed_correlated_steps():
    zs = np.array([3, 4, 6, 7, 8, 11])
    got = drift.drift_covariance(zs, 0.3, 0.5)
    n = zs[-1] - zs[0]
    lag = np.abs(np.subtract.outer(np.arange(n), np.arange(n)))
    lower = np.tril(np.ones((n, n)))
    want = np.zeros((n + 1, n + 1))
    want[1:, 1:] = lower @ (0.09 * 0.5**lag) @ lower.T
    assert np.allclose(got, want[np.ix_(zs - 3, zs - 3)])
    # and the simulation draws from it
    rng = np.random.default_rng(0)
    sims = np.stack([_simulate(rng, 12, 0.3, 0.5)[:, 0] for _ in range(4000)])
    emp = np.cov(sims[:, zs - 3].T)
    assert np.allclose(emp, got, atol=0.15 * got.max())


def test_shift_spread_reads_white_shifts_through_a_drift():
    rng = np.random.default_rng(1)
    shifts = rng.normal(0, 8.0, (400, 2))
    spread = drift.shift_spread(shifts + _simulate(rng, 400, 0.25, 0.6))
    assert spread == pytest.approx(8.0, rel=0.1)


def _strict(translations: np.ndarray, shifts: np.ndarray, usable: np.ndarray) -> float:
    """RMS (px) of the translations' error from the true shifts about its mean."""
    err = (translations - shifts)[usable]
    return float(np.sqrt(((err - err.mean(0)) ** 2).sum(1).mean()))


@pytest.mark.parametrize(("nz", "gain"), [(64, 0.9), (256, 0.5)])
def test_removing_the_drift_brings_translations_to_the_sections_own_shifts(nz, gain):
    rng = np.random.default_rng(nz)
    grid, stride = (4, 5), 32
    ident = warp.identity_nodes(grid, stride)
    before, after = [], []
    for _ in range(6):
        shifts = rng.normal(0, 8.0, (nz, 2))
        moved = _simulate(rng, nz, 0.25, 0.6)
        shape = rng.normal(0, 0.5, (nz, *grid, 2))
        shape -= shape.mean(axis=(1, 2), keepdims=True)
        nodes = ident[None] + (shifts + moved)[:, None, None] + shape
        usable = np.ones(nz, bool)
        usable[[5, 6, nz // 2]] = False
        out = drift.remove_drift(nodes, usable, drift.DriftConfig(shape_step=0))
        got = (out - ident[None]).mean(axis=(1, 2))
        # shapes untouched: every node of a section moved by the same amount
        assert np.allclose(out - got[:, None, None], nodes - (nodes - ident[None]).mean(
            axis=(1, 2))[:, None, None])

        before.append(_strict((nodes - ident[None]).mean(axis=(1, 2)), shifts, usable))
        after.append(_strict(got, shifts, usable))
    assert np.mean(after) < gain * np.mean(before), (np.mean(before), np.mean(after))


def test_short_stacks_and_zero_steps_keep_the_maps():
    rng = np.random.default_rng(3)
    nodes = rng.normal(0, 8.0, (7, 3, 3, 2))
    assert drift.remove_drift(nodes, np.ones(7, bool), drift.DriftConfig()) is nodes
    nodes = rng.normal(0, 8.0, (20, 3, 3, 2))
    off = drift.DriftConfig(step=0, shape_step=0)
    assert drift.remove_drift(nodes, np.ones(20, bool), off) is nodes


def test_removing_the_shape_drift_leaves_each_node_its_sections_own_warp():
    rng = np.random.default_rng(7)
    nz, grid, stride = 128, (3, 4), 32
    ident = warp.identity_nodes(grid, stride)
    own = rng.normal(0, 2.0, (nz, *grid, 2))
    own -= own.mean(axis=(1, 2), keepdims=True)
    moved = np.stack([_simulate(rng, nz, 0.4, 0.5) for _ in range(grid[0] * grid[1])], 1)
    moved = moved.reshape(nz, *grid, 2)
    moved -= moved.mean(axis=(1, 2), keepdims=True)
    nodes = ident[None] + own + moved
    usable = np.ones(nz, bool)
    out = drift.remove_drift(nodes, usable, drift.DriftConfig(step=0))
    # translations untouched; every node's motion about them closer to the section's own warp
    assert np.allclose(out.mean(axis=(1, 2)), nodes.mean(axis=(1, 2)))

    def error(x: np.ndarray) -> float:
        e = x - ident[None] - own
        e -= e.mean(axis=0)
        return float(np.sqrt((e**2).sum(-1).mean()))

    assert error(out) < 0.5 * error(nodes), (error(nodes), error(out))
