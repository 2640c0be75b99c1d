"""Distilling further: from existing student weights (`init`), and resumed from a checkpoint
after a kill as if never stopped; weights of another stride, widths or voxel size refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from connectome_query.cli.main import app
from connectome_query.reconstruct import affinity_net, distil, io, synth, training

CROP = (4, 16, 16)  # y, x multiples of 4 at stride 2


class Killed(Exception):
    pass


@pytest.fixture(scope="module")
def teacher() -> affinity_net.AffinityNet:
    """A small random teacher at the training voxel size (quick to compile and run)."""
    return affinity_net.AffinityNet(
        [(np.asarray(w), np.asarray(b)) for w, b in affinity_net.init_params(7, (4, 8))],
        {affinity_net.WIDTHS_KEY: [4, 8], affinity_net.VOXEL_SIZE_KEY: [40.0, 16.0, 16.0]})


def _vols(v: synth.Slab) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    return [(v.image, v.labels, v.clefts != 0)]


def _student(teacher: affinity_net.AffinityNet, vols: list, steps: int, **kw: object
             ) -> affinity_net.AffinityNet:
    return distil.distil(teacher, vols, steps, widths=(4, 8), stride=2, crop=CROP, batch=1,
                         seed=3, **kw)  # type: ignore[arg-type]


def test_a_killed_distillation_resumes_where_it_stopped(
        tmp_path: Path, teacher: affinity_net.AffinityNet, small_volume: synth.Slab) -> None:
    vols = _vols(small_volume)
    whole = _student(teacher, vols, 6)

    def kill_at_4(i: int, _loss: float) -> None:
        if i == 4:  # step 5 taken but not saved: the checkpoint holds step 4
            raise Killed

    ckpt = tmp_path / "s.ckpt.npz"
    with pytest.raises(Killed):
        _student(teacher, vols, 6, checkpoint=ckpt, checkpoint_every=2, tick=kill_at_4)
    heard: list[int] = []
    resumed = _student(teacher, vols, 6, checkpoint=ckpt, checkpoint_every=2,
                       start=heard.append)
    assert heard == [4]
    assert resumed.meta["steps"] == whole.meta["steps"] == 6
    for (w0, b0), (w1, b1) in zip(whole.params, resumed.params, strict=True):
        np.testing.assert_allclose(w1, w0, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b1, b0, rtol=1e-5, atol=1e-6)


def test_distilling_further_starts_from_the_given_weights(
        teacher: affinity_net.AffinityNet, small_volume: synth.Slab) -> None:
    vols = _vols(small_volume)
    first = _student(teacher, vols, 2)
    # a rate of zero leaves the weights where they start: the given ones, not fresh ones
    again = _student(teacher, vols, 3, init=first, lr=0.0)
    assert again.meta["steps"] == 5
    for (w0, _b0), (w1, _b1) in zip(first.params, again.params, strict=True):
        np.testing.assert_array_equal(w1, w0)
    fresh = _student(teacher, vols, 1, lr=0.0)
    assert not np.array_equal(fresh.params[0][0], first.params[0][0])


def test_truth_in_the_targets_moves_them_towards_the_truth(
        teacher: affinity_net.AffinityNet, small_volume: synth.Slab) -> None:
    vols = _vols(small_volume)
    img, lab, cl = vols[0]
    target = distil.teacher_targets(teacher, vols)
    prepared = [affinity_net.prepare(img)]
    crop = (8, 32, 32)
    got = [distil._batch(prepared, vols, target, np.random.default_rng(5), crop, 1, w)[1][0]
           for w in (0.0, 0.5, 1.0)]
    # the crop drawn, redrawn independently from the same generator state
    rng = np.random.default_rng(5)
    rng.integers(1)
    z0, y0, x0 = (int(rng.integers(0, n - c + 1)) for n, c in zip(img.shape, crop, strict=True))
    sl = (slice(z0, z0 + crop[0]), slice(y0, y0 + crop[1]), slice(x0, x0 + crop[2]))
    truth, _m = affinity_net.loss_weights(lab[sl], cl[sl])
    np.testing.assert_allclose(got[0], target[0][(slice(None), *sl)], atol=1e-6)
    np.testing.assert_allclose(got[2], truth, atol=1e-6)
    np.testing.assert_allclose(got[1], 0.5 * (got[0] + got[2]), atol=1e-6)
    with pytest.raises(ValueError, match="truth_weight"):
        _student(teacher, vols, 1, truth_weight=1.5)


def test_weights_of_another_student_are_refused(
        teacher: affinity_net.AffinityNet, small_volume: synth.Slab) -> None:
    vols = _vols(small_volume)
    lean = io.load_net(training.LEAN_NET)  # stride 1
    with pytest.raises(ValueError, match="stride 1, not 2"):
        _student(teacher, vols, 1, init=lean)
    coarse = io.load_net(training.COARSE_NET)  # stride 2, widths 16, 32
    with pytest.raises(ValueError, match="widths"):
        _student(teacher, vols, 1, init=coarse)
    other = affinity_net.AffinityNet(coarse.params, {**coarse.meta,
                                                     affinity_net.VOXEL_SIZE_KEY: [30, 8, 8]})
    with pytest.raises(ValueError, match="voxel size"):
        distil.check_student(other, (16, 32), 2, (40.0, 16.0, 16.0))


def test_cli_refuses_init_of_another_stride(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["distil-affinity-net", str(tmp_path / "x.npz"),
                                 "--stride", "2", "--widths", "8,24",
                                 "--init", str(training.LEAN_NET)])
    assert r.exit_code == 1
    assert "--init" in r.output and "stride 1" in r.output
    assert not (tmp_path / "x.npz").exists()
