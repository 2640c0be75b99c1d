"""Flow fields and the elastic mesh against displacements made up for the test."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage as ndi

from connectome_query.reconstruct.align import elastic, flow, mesh, warp
from connectome_query.reconstruct.synth.raw import smooth_field


def _warped(section: np.ndarray, field: np.ndarray) -> np.ndarray:
    """moving(x) = fixed(x - w(x)): so moving(p + w(p)) ~ fixed(p) for a smooth w."""
    yy, xx = np.mgrid[0:section.shape[0], 0:section.shape[1]].astype(np.float64)
    return ndi.map_coordinates(section, [yy - field[0], xx - field[1]], order=1, mode="mirror")


def test_flow_recovers_a_known_warp(raw_volume):
    fixed = raw_volume.undeformed[2].astype(np.float32) / 255
    w = smooth_field(9, 0, fixed.shape, 2.0, 200.0)
    w[0] += 7.0
    w[1] -= 4.0
    f = flow.section_flow(fixed, _warped(fixed, w), stride=16, patch=64)
    nodes = warp.identity_nodes(f.yx.shape[:2], 16).reshape(-1, 2)
    nodes = np.minimum(nodes, np.array(fixed.shape) - 1).astype(int)
    true = np.stack([w[0][nodes[:, 0], nodes[:, 1]], w[1][nodes[:, 0], nodes[:, 1]]], -1)
    ok = f.valid.reshape(-1)
    assert ok.mean() > 0.3
    err = np.linalg.norm(f.yx.reshape(-1, 2)[ok] - true[ok], axis=1)
    assert np.median(err) < 0.5 and np.percentile(err, 90) < 1.0, np.percentile(err, [50, 90])


def test_an_uncovered_border_drops_only_the_flows_it_covers(raw_volume):
    """A thin masked band along the border (a stitched section's uncovered edge) leaves the
    flows of nodes whose patches lie mostly inside the section; a patch over a masked area
    is dropped. The part of a patch beyond the section is the edge rule's, not the mask's."""
    fixed = raw_volume.undeformed[2].astype(np.float32) / 255
    moving = _warped(fixed, np.stack([np.full(fixed.shape, 2.5), np.full(fixed.shape, -1.5)]))
    free = flow.section_flow(fixed, moving, stride=32, patch=128)
    band = np.zeros(fixed.shape, bool)
    band[:, -3:] = True
    banded = flow.section_flow(fixed, moving, stride=32, patch=128, mask=band)
    assert free.valid.sum() >= 16
    # the band hides 3 of the 96+ section pixels across every patch it reaches
    assert banded.valid.sum() >= free.valid.sum() - 2, (banded.valid.sum(), free.valid.sum())
    block = np.zeros(fixed.shape, bool)
    block[:, : fixed.shape[1] // 2] = True
    blocked = flow.section_flow(fixed, moving, stride=32, patch=128, mask=block)
    gx = np.arange(free.yx.shape[1]) * 32
    assert not blocked.valid[:, gx + 64 <= fixed.shape[1] // 2].any()
    assert blocked.valid[:, gx - 64 >= fixed.shape[1] // 2].any()


def test_xcorr_finds_integer_and_fractional_shifts():
    rng = np.random.default_rng(0)
    img = ndi.gaussian_filter(rng.standard_normal((200, 200)), 2).astype(np.float32)
    fixed = img[50:114, 50:114]
    # moving(x) = img(x + (3.4, -5.25))
    moving = ndi.shift(img, (-3.4, 5.25), order=3)[50:114, 50:114]
    s, peak, _ = flow.xcorr_peaks(jnp.asarray(fixed[None]), jnp.asarray(moving[None]),
                                  jnp.asarray(flow._window(64)), max_shift=12)
    assert np.allclose(np.asarray(s[0]), (-3.4, 5.25), atol=0.25)  # moving(x + s) = fixed(x)
    assert float(peak[0]) > 0.8


def test_mesh_follows_good_flows_and_carries_the_rest():
    rng = np.random.default_rng(1)
    grid, stride = (12, 12), 16
    rest = warp.identity_nodes(grid, stride)
    field = smooth_field(4, 0, (grid[0] * stride, grid[1] * stride), 3.0, 160.0)
    true = rest + np.stack([field[k][::stride, ::stride] for k in range(2)], -1)
    target = true + rng.normal(0, 0.3, true.shape)
    weight = (rng.random(grid) > 0.3).astype(float)
    target[weight == 0] = np.nan
    x, steps, fmax = mesh.relax(target, weight, rest, rest, mesh.MeshConfig(k_intra=0.3))
    assert steps < mesh.MeshConfig().max_steps and fmax < 1e-2
    err = np.linalg.norm(x - true, axis=-1)
    assert np.sqrt(np.mean(err**2)) < 0.5, np.sqrt(np.mean(err**2))


def test_a_rigid_motion_stores_no_elastic_energy():
    rest = warp.identity_nodes((6, 7), 20)
    th = 0.05
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    moved = rest @ rot.T + np.array([5.0, -3.0])
    e = mesh.energy(jnp.asarray(moved), jnp.asarray(moved), jnp.zeros((6, 7)),
                    jnp.asarray(rest), 1.0, 1.0)
    assert float(e) < 1e-6
    squashed = rest * np.array([1.0, 0.9])
    assert float(mesh.energy(jnp.asarray(squashed), jnp.asarray(squashed), jnp.zeros((6, 7)),
                             jnp.asarray(rest), 1.0, 1.0)) > 1.0


def test_combined_targets_drop_a_reference_that_disagrees():
    base = warp.identity_nodes((4, 4), 32)
    good = base + np.array([2.0, -1.0])
    wrong = base + np.array([20.0, 5.0])
    ones = np.ones((4, 4))
    t, w = elastic.combine_targets([good, good + 0.5, wrong], [ones, ones * 0.5, ones])
    assert np.allclose(t, good + 0.5 / 3) and np.allclose(w, 1.5)


def test_structure_ignores_polarity_and_masked_pixels():
    rng = np.random.default_rng(1)
    img = ndi.gaussian_filter(rng.standard_normal((96, 96)), 2).astype(np.float32)
    assert np.allclose(flow.structure(img), flow.structure(-img), atol=1e-5)
    mask = np.zeros(img.shape, bool)
    mask[40:50, :] = True
    s = flow.structure(img, mask)
    assert (s[37:53] == 0).all() and np.abs(s[:30]).max() > 0


def test_z_trend_leaves_translations_and_removes_a_drift_of_shape():
    """Maps = identity + per-section translation + a shape drifting linearly along z + a shape
    of each section's own. The drift goes (checked per node by np.polyfit on the usable
    sections), every translation stays, and an unusable section does not move the fit."""
    rng = np.random.default_rng(3)
    nz, grid, stride = 9, (5, 6), 32
    ident = warp.identity_nodes(grid, stride)
    drift = rng.normal(0, 1.0, (*grid, 2))
    drift -= drift.mean(axis=(0, 1))
    shift = rng.normal(0, 8.0, (nz, 1, 1, 2))
    own = rng.normal(0, 0.5, (nz, *grid, 2))
    own -= own.mean(axis=(1, 2), keepdims=True)
    z = np.arange(nz, dtype=float)[:, None, None, None]
    nodes = ident[None] + shift + drift[None] * z + own
    usable = np.ones(nz, bool)
    usable[4] = False
    nodes[4] += 50.0 * drift  # garbage in a section that is not fitted
    out = elastic.remove_z_trend(nodes, ident, usable, degree=1)
    moved = (out - ident[None]).mean(axis=(1, 2))
    assert np.allclose(moved, (nodes - ident[None]).mean(axis=(1, 2)))
    shape = out - ident[None] - moved[:, None, None]
    slopes = np.polyfit(np.flatnonzero(usable), shape[usable].reshape(usable.sum(), -1), 1)[0]
    assert np.abs(slopes).max() < 1e-9
    # without a shape of their own, the sections are left with one shape common to all
    plain = elastic.remove_z_trend(nodes - own, ident, usable, degree=1)
    left = (plain - ident[None] - moved[:, None, None])[usable]
    assert np.allclose(left, left[0][None], atol=1e-9)
    before = np.abs((drift[None] * z)[usable] - (drift[None] * z)[usable].mean(0)).max()
    assert before > 3.0  # the drift was there to remove
    assert elastic.remove_z_trend(nodes, ident, usable, degree=0) is nodes


def test_nodes_without_a_flow_get_the_local_affine_continuation():
    """Targets of an affine map on the nodes that have a flow (an interior block; the border
    and a hole have none): every other node gets the same affine map's value (computed here
    from its formula) at `fill` times the largest weight; nodes with a flow keep theirs."""
    grid, stride = (9, 10), 32
    ident = warp.identity_nodes(grid, stride)
    a = np.array([[0.02, -0.01], [0.015, 0.03]])
    affine = ident + ident @ a.T + np.array([5.0, -3.0])
    weight = np.zeros(grid)
    weight[2:7, 3:8] = np.linspace(0.5, 1.0, 25).reshape(5, 5)
    weight[4, 5] = 0.0
    target = np.where(weight[..., None] > 0, affine, np.nan)
    out, w = elastic.fill_targets(target, weight, ident, sigma=3.0, fill=0.4)
    assert np.allclose(out, affine, atol=1e-6)
    assert np.array_equal(w[weight > 0], weight[weight > 0])
    assert np.allclose(w[weight == 0], 0.4)
    # nothing to continue from: left alone
    few = np.zeros(grid)
    few[4, 4] = 1.0
    same, w2 = elastic.fill_targets(target, few, ident, 3.0, 0.4)
    assert same is target and w2 is few


@pytest.mark.slow
def test_a_damaged_section_serves_as_reference_when_asked():
    """One texture shifted by known amounts per section, section 2 damaged (blurred): with
    `damaged_references` section 3 is aligned to it (blur-matched), without it to section 1;
    either way each map's mean displacement recovers the section's shift (section z shows
    at p what section 0 shows at p + shift: its map moves the nodes by minus the shift)."""
    rng = np.random.default_rng(4)
    base = ndi.gaussian_filter(rng.standard_normal((160, 160)), 2.0).astype(np.float32)
    shifts = np.array([[0.0, 0.0], [3.0, -2.0], [-1.5, 4.0], [5.0, 1.0], [2.0, -3.5]])
    stack = np.stack([ndi.shift(base, -s, order=3, mode="mirror") for s in shifts])
    stack[2] = ndi.gaussian_filter(stack[2], 2.0)
    usable = np.ones(5, bool)
    ref_ok = usable.copy()
    ref_ok[2] = False
    for damaged, expect in ((True, 2), (False, 1)):
        cfg = elastic.AlignConfig(stride=32, patch=64, damaged_references=damaged,
                                  z_trend_degree=0)
        maps = elastic.align_stack(lambda z: stack[z], lambda z: np.zeros((160, 160), bool),
                                   5, usable, ref_ok, (160, 160), cfg)
        assert maps.reference[3] == expect
        ident = warp.identity_nodes(maps.nodes.shape[1:3], 32)
        moved = (maps.nodes - ident[None])[:, 2:-2, 2:-2].mean(axis=(1, 2))
        # the frame is the sections' mean (the joint solve's gauge): shifts relative to it
        assert np.abs(moved + shifts - shifts.mean(0)).max() < 0.3, moved



def _asked_pairs(usable: np.ndarray, ref_ok: np.ndarray, cfg: elastic.AlignConfig,
                 rng: np.random.Generator) -> set[tuple[int, int]]:
    """The pairs `align_stack` asks its look-up for, answered with flows of random coverage
    (0 to 40 %, straddling the 20 % a damaged section needs to serve as a reference)."""
    shape = (64, 64)
    grid = flow.grid_shape(shape, cfg.stride)
    asked: set[tuple[int, int]] = set()

    def lookup(z: int, r: int) -> flow.Flow:
        asked.add((z, r))
        yx = np.zeros((*grid, 2), np.float32)
        yx[rng.random(grid) < rng.uniform(0.6, 1.0)] = np.nan
        return flow.Flow(yx, np.ones(grid, np.float32), cfg.stride)

    elastic.align_stack(lambda z: np.zeros(shape, np.float32), lambda z: np.zeros(shape, bool),
                        len(usable), usable, ref_ok, shape, cfg, flows=lookup)
    return asked


def test_the_alignment_asks_only_for_candidate_pairs():
    """Random section flags and flows: every pair `align_stack` asks for is among
    `candidate_pairs` (which the engine measures up front), whichever damaged sections
    turn out to serve as references."""
    rng = np.random.default_rng(11)
    for trial in range(24):
        usable = rng.random(12) > 0.2
        ref_ok = usable & (rng.random(12) > 0.35)
        cfg = elastic.AlignConfig(stride=32, patch=32, references=int(rng.integers(1, 4)),
                                  damaged_references=bool(trial % 2), border_fill=0.0,
                                  z_trend_degree=0)
        asked = _asked_pairs(usable, ref_ok, cfg, rng)
        candidates = set(elastic.candidate_pairs(usable, ref_ok, cfg))
        assert asked <= candidates, (usable, ref_ok, asked - candidates)
        assert all(usable[z] and usable[r] and r < z for z, r in candidates)


def test_a_section_across_a_gap_holds_its_references_shape_more():
    """Flows that pull a section 5% larger move it less when its nearest reference is three
    sections back (`elastic.gap_mesh`) than when it is the section before."""
    cfg = elastic.AlignConfig()
    rest = warp.identity_nodes((8, 8), 32)
    stretched = rest * 1.05
    weight = np.ones((8, 8))

    def width(distance: int) -> float:
        x, _, _ = mesh.relax(stretched, weight, rest, rest, elastic.gap_mesh(cfg, distance))
        return float(np.ptp(x[..., 1]))

    assert elastic.gap_mesh(cfg, 1) == cfg.mesh
    assert np.ptp(stretched[..., 1]) > width(1) > width(3) > np.ptp(rest[..., 1])


def test_a_section_after_three_missing_ones_is_reported():
    """One texture shifted per section: the section after a run of three missing sections
    (its nearest reference four back) is reported as uncertain, the one after a run of two
    is not, and a section whose flows are all good never is."""
    rng = np.random.default_rng(8)
    base = ndi.gaussian_filter(rng.standard_normal((128, 128)), 2.0).astype(np.float32)
    shifts = rng.normal(0.0, 2.0, (12, 2))
    stack = np.stack([ndi.shift(base, -s, order=3, mode="mirror") for s in shifts])
    cfg = elastic.AlignConfig(stride=32, patch=64, z_trend_degree=0)

    def reported(missing: list[int]) -> list[int]:
        usable = np.ones(12, bool)
        usable[missing] = False
        maps = elastic.align_stack(lambda z: stack[z], lambda z: np.zeros((128, 128), bool),
                                   12, usable, usable, (128, 128), cfg)
        return [int(n.split(":")[0].split()[1]) for n in maps.notes if n.startswith("section ")]

    assert reported([3, 4, 5]) == [6]
    assert reported([3, 4]) == []
    assert reported([2, 3, 4, 8, 9, 10]) == [5, 11]
    assert reported([]) == []
