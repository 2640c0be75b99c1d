"""The lean affinity network: distilled from the shipped one, same topology, fewer channels; and
the prediction halo against the network's measured reach."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from connectome_query.cli.main import app
from connectome_query.reconstruct import affinity_net, boundary, distil, io, synth, training


@pytest.fixture(scope="module")
def lean() -> affinity_net.AffinityNet:
    return io.load_net(training.LEAN_NET)


def _reach(net: affinity_net.AffinityNet) -> np.ndarray:
    """How far (z, y, x voxels) an output moves when one input voxel changes, measured by
    perturbing voxels of both in-plane parities (the pooling pairs them)."""
    import jax.numpy as jnp

    ps = [(jnp.asarray(w), jnp.asarray(b)) for w, b in net.params]
    x = np.random.default_rng(0).normal(size=(1, 1, 17, 40, 40)).astype(np.float32)
    base = np.asarray(affinity_net.forward(ps, jnp.asarray(x)))
    reach = np.zeros(3, int)
    for at in ((8, 20, 20), (8, 21, 21), (8, 20, 21), (8, 21, 20)):
        x2 = x.copy()
        x2[(0, 0, *at)] += 5.0
        moved = np.abs(np.asarray(affinity_net.forward(ps, jnp.asarray(x2))) - base)
        idx = np.argwhere(moved.max(axis=(0, 1)) > 0)
        reach = np.maximum(reach, np.abs(idx - np.array(at)).max(axis=0))
    return reach


def test_halo_covers_the_reach_of_both_networks(shipped: affinity_net.AffinityNet,
                                                lean: affinity_net.AffinityNet) -> None:
    for net in (shipped, lean):
        reach = _reach(net)
        assert reach[0] > 0 and reach[1] > 0
        assert all(r <= h for r, h in zip(reach, affinity_net.HALO, strict=True)), reach


def test_lean_net_is_the_shipped_topology_with_fewer_multiply_adds(
        shipped: affinity_net.AffinityNet, lean: affinity_net.AffinityNet) -> None:
    assert shipped.meta.get(affinity_net.WIDTHS_KEY) is None  # written before widths existed
    assert affinity_net.layers() == affinity_net.LAYERS
    widths = tuple(lean.meta[affinity_net.WIDTHS_KEY])
    assert widths == distil.LEAN_WIDTHS
    for (w, _b), (cin, cout, k) in zip(lean.params, affinity_net.layers(widths), strict=True):
        assert w.shape == (cout, cin, *k)
    # multiply-adds counted independently from the weight arrays (pooled layers 2, 3: 1/4)
    by_arrays = [sum(w.size * (0.25 if i in (2, 3) else 1.0)
                     for i, (w, _b) in enumerate(net.params)) for net in (shipped, lean)]
    assert distil.multiply_adds(affinity_net.WIDTHS) == pytest.approx(by_arrays[0])
    assert distil.multiply_adds(widths) == pytest.approx(by_arrays[1])
    assert by_arrays[0] / by_arrays[1] > 2.5


def test_lean_net_separates_cells(lean: affinity_net.AffinityNet, clean_dir: Path) -> None:
    """Against the volume's own truth (a seed far from the training seeds)."""
    img = io.read_image(clean_dir, io.read_volume_info(clean_dir))
    truth = io.read_truth(clean_dir, img.shape)
    assert truth is not None
    affs, _ = affinity_net.predict(lean, img)
    lab = truth["segmentation"]
    true = boundary.true_affinities(lab)
    inside = true > 0.5
    across = np.zeros_like(inside)
    across[2, :, :, 1:] = ((lab[:, :, 1:] != lab[:, :, :-1]) & (lab[:, :, 1:] != 0)
                           & (lab[:, :, :-1] != 0))
    assert across.sum() > 50
    assert float((affs[inside] > 0.5).mean()) > 0.85
    assert float((affs[across] < 0.5).mean()) > 0.8


def _distillation_loss(net: affinity_net.AffinityNet, teacher: affinity_net.AffinityNet,
                       v: synth.Slab) -> float:
    """Cross-entropy of `net`'s probabilities against the teacher's on a whole volume,
    weighted as in training (`loss_weights` of the truth)."""
    t_affs, t_cleft = affinity_net.predict(teacher, v.image)
    target = np.concatenate([t_affs, t_cleft[None]])
    affs, cleft = affinity_net.predict(net, v.image)
    p = np.clip(np.concatenate([affs, cleft[None]]), 1e-6, 1 - 1e-6)
    _truth, m = affinity_net.loss_weights(v.labels, v.clefts != 0)
    bce = -(target * np.log(p) + (1 - target) * np.log(1 - p))
    return float((bce * m).sum() / m.sum())


def test_distilling_moves_the_student_towards_the_teacher(
        shipped: affinity_net.AffinityNet, small_volume: synth.Slab) -> None:
    vol = [(small_volume.image, small_volume.labels, small_volume.clefts != 0)]
    losses: list[float] = []
    student = distil.distil(shipped, vol, 60, widths=(4, 8), seed=2, crop=(8, 32, 32),
                            batch=1, tick=lambda _i, loss: losses.append(loss))
    assert len(losses) == 60 and np.isfinite(losses).all()
    assert student.meta[affinity_net.WIDTHS_KEY] == [4, 8]
    fresh = affinity_net.AffinityNet(affinity_net.init_params(2, (4, 8)), dict(student.meta))
    assert (_distillation_loss(student, shipped, small_volume)
            < _distillation_loss(fresh, shipped, small_volume))
    with pytest.raises(ValueError, match="at least"):
        distil.distil(shipped, [tuple(v[:4] for v in vol[0])], 1)  # type: ignore[list-item]


def test_lean_weights_round_trip(tmp_path: Path, lean: affinity_net.AffinityNet) -> None:
    p = tmp_path / "lean.npz"
    io.save_net(p, lean)
    back = io.load_net(p)
    assert back.meta == lean.meta
    for (w0, _b0), (w1, _b1) in zip(lean.params, back.params, strict=True):
        assert np.array_equal(w0, w1)


def test_cli_distil_refuses_bad_widths(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["distil-affinity-net", str(tmp_path / "x.npz"),
                                 "--widths", "8"])
    assert r.exit_code == 2
    assert "--widths" in r.output


def test_shipped_networks_by_name(tmp_path: Path, clean_dir: Path) -> None:
    assert training.net_file("lean") == training.LEAN_NET
    assert training.net_file("full") == training.DEFAULT_NET
    assert training.net_file(None) is None
    assert training.net_file(str(tmp_path / "mine.npz")) == tmp_path / "mine.npz"
    r = CliRunner().invoke(app, ["reconstruct", str(clean_dir), str(tmp_path / "run"),
                                 "--net", "leen", "--quiet"])
    assert r.exit_code == 1
    assert "leen" in r.output
