"""The FFN's weights (round trip, bad files), its training (resumed = unbroken), CLI checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from connectome_query.cli.main import app
from connectome_query.reconstruct import io
from connectome_query.reconstruct.errors import ReconstructError
from connectome_query.reconstruct.ffn import model, training
from connectome_query.reconstruct.ffn.model import FOV

VS = (40.0, 16.0, 16.0)


def small_net(seed: int = 0) -> model.FFN:
    return model.FFN(model.init_params(seed), {model.VOXEL_SIZE_KEY: list(VS)})


def test_weights_round_trip_and_bad_files(tmp_path: Path) -> None:
    net = small_net()
    p = tmp_path / "ffn.npz"
    io.save_ffn(p, net)
    back = io.load_ffn(p)
    assert back.meta == net.meta and back.fov == FOV
    for (w, b), (w2, b2) in zip(net.params, back.params, strict=True):
        assert np.array_equal(w, w2) and np.array_equal(b, b2)
    with pytest.raises(ReconstructError, match="does not exist"):
        io.load_ffn(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_text("nope")
    with pytest.raises(ReconstructError, match=r"junk\.npz"):
        io.load_ffn(junk)
    arrays = model.to_arrays(net)
    arrays["w3"] = arrays["w3"][:, :1]
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ReconstructError, match="layer 3"):
        io.load_ffn(bad)
    arrays = model.to_arrays(net)
    arrays["format"] = np.array("connectome-query/affinity-unet/1")
    np.savez(bad, **arrays)
    with pytest.raises(ReconstructError, match="format"):
        io.load_ffn(bad)


def test_voxel_size_is_checked() -> None:
    net = small_net()
    model.check_voxel_size(net, VS)
    with pytest.raises(ValueError, match="trained at voxel size"):
        model.check_voxel_size(net, (30.0, 8.0, 8.0))
    with pytest.raises(ValueError, match="lacks"):
        model.check_voxel_size(model.FFN(net.params, {}), VS)


def test_untrained_network_returns_its_mask() -> None:
    """The last layer starts at zero: the update is nothing, the mask comes back."""
    rng = np.random.default_rng(0)
    img = rng.normal(size=FOV).astype(np.float32)
    mask = rng.normal(size=FOV).astype(np.float32)
    out = model.NetPredictor(small_net())((0, 0, 0), img, mask)
    assert out.shape == FOV
    assert np.allclose(out, mask, atol=1e-6)


def test_resumed_training_equals_unbroken(tmp_path: Path) -> None:
    vols = training.training_volumes(1, (16, 64, 64))
    unbroken = training.train(vols, 2, tmp_path / "a.npz", batch=2, checkpoint_every=1)
    # a time budget of nothing stops after the first step, checkpointed
    starts: list[int] = []
    ticks: list[int] = []
    first = training.train(vols, 5, tmp_path / "b.npz", batch=2, checkpoint_every=3,
                           max_seconds=0.0, start=starts.append)
    _, _, done, losses = training.load_checkpoint(tmp_path / "b.npz", len(model.layers()))
    assert done == 1 and len(losses) == 1 and starts == [0] and first.meta["steps"] == 1
    assert first.meta["history"][-1].startswith("steps 1-1:")
    # resumed, it starts (and its progress bar starts) at the checkpoint's step
    resumed = training.train(vols, 2, tmp_path / "b.npz", batch=2, checkpoint_every=1,
                             start=starts.append, tick=lambda i, loss: ticks.append(i))
    assert starts == [0, 1] and ticks == [1]
    assert [h.split(":")[0] for h in resumed.meta["history"]] == ["steps 1-1", "steps 2-2"]
    for (w, b), (w2, b2) in zip(unbroken.params, resumed.params, strict=True):
        assert np.allclose(w, w2, atol=1e-6) and np.allclose(b, b2, atol=1e-6)
    assert np.isfinite(unbroken.meta["final_loss"])
    assert not np.array_equal(unbroken.params[-1][0], model.init_params(0)[-1][0])


def test_dilations_widen_what_the_centre_sees(tmp_path: Path) -> None:
    """With dilations 1, 2, 4, 8 a change at an in-plane corner of the FOV reaches its centre
    (16 voxels away); without them it does not. The dilations travel with the weights."""
    rng = np.random.default_rng(1)
    ps = [(w + rng.normal(0, 0.1, w.shape).astype(np.float32), b)
          for w, b in model.init_params(0)]
    img = rng.normal(size=FOV).astype(np.float32)
    mask = np.zeros(FOV, np.float32)
    far = img.copy()
    far[6, :3, :3] += 5.0
    c = (6, 16, 16)
    for dil, reaches in (((1, 2, 4, 8), True), ((1, 1, 1, 1), False)):
        net = model.FFN(ps, {model.VOXEL_SIZE_KEY: list(VS), "dilations": list(dil)})
        io.save_ffn(tmp_path / "d.npz", net)
        back = io.load_ffn(tmp_path / "d.npz")
        assert back.dilations == dil
        pred = model.NetPredictor(back)
        assert (abs(pred((0, 0, 0), far, mask)[c] - pred((0, 0, 0), img, mask)[c]) > 1e-6) \
            == reaches
    bad = model.FFN(ps, {model.VOXEL_SIZE_KEY: list(VS), "dilations": [1, 2]})
    io.save_ffn(tmp_path / "bad.npz", bad)
    with pytest.raises(Exception, match="dilations"):
        io.load_ffn(tmp_path / "bad.npz")


def test_training_checks() -> None:
    vols = training.training_volumes(1, (16, 64, 64))
    with pytest.raises(ValueError, match="at least 1"):
        training.train(vols, 0, Path("unused.npz"))
    with pytest.raises(ValueError, match="deep enough"):
        training.make_volume(np.zeros((4, 8, 8), np.float32), np.zeros((4, 8, 8), np.int64),
                             VS, (1, 1, 1))


def test_cli_refuses_bad_options(tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["train-ffn", str(tmp_path / "f.npz"), "--steps", "0"])
    assert r.exit_code == 2 and "--steps" in r.output
    r = runner.invoke(app, ["train-ffn", str(tmp_path / "f.npz"), "--lr", "0"])
    assert r.exit_code == 2 and "--lr" in r.output
    em = tmp_path / "em"
    r = runner.invoke(app, ["synth-em", str(em), "--size", "32,32,16", "--quiet"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["reconstruct", str(em), str(tmp_path / "run"), "--segmenter",
                            "flood", "--quiet"])
    assert r.exit_code == 2 and "--segmenter" in r.output
    r = runner.invoke(app, ["reconstruct", str(em), str(tmp_path / "run"), "--ffn",
                            str(tmp_path / "f.npz"), "--quiet"])
    assert r.exit_code == 2 and "--ffn" in r.output
    bad = tmp_path / "bad.npz"
    bad.write_text("nope")
    r = runner.invoke(app, ["reconstruct", str(em), str(tmp_path / "run"), "--segmenter", "ffn",
                            "--ffn", str(bad), "--quiet"])
    assert r.exit_code == 1 and "bad.npz" in r.output
    other = tmp_path / "other.npz"
    io.save_ffn(other, model.FFN(model.init_params(0), {model.VOXEL_SIZE_KEY: [30.0, 8.0, 8.0]}))
    r = runner.invoke(app, ["reconstruct", str(em), str(tmp_path / "run"), "--segmenter", "ffn",
                            "--ffn", str(other), "--quiet"])
    assert r.exit_code == 1 and "voxel size" in r.output
    assert not (tmp_path / "run").exists()


def test_training_moves_walk_along_the_object_without_going_back() -> None:
    """On a mask that is certain along one line in x, successive training moves step along
    it one `DELTA` at a time, never back to a visited centre, and stop at the region's end."""
    region = (13, 33, 105)
    mask = np.full(region, model.logit(model.P_EMPTY), np.float32)
    mask[6, 16, :] = 5.0
    lo = tuple(f // 2 for f in FOV)
    hi = tuple(r - h for r, h in zip(region, lo, strict=True))
    at = (6, 16, 52)
    visited = [at]
    rng = np.random.default_rng(0)
    thr = model.logit(0.9)
    while (nxt := training.next_centre(mask, at, visited, lo, hi, thr, rng)) is not None:
        assert nxt[:2] == (6, 16) and abs(nxt[2] - at[2]) == model.DELTA[2]
        assert nxt not in visited
        at = nxt
        visited.append(nxt)
    # one way along the line, to where the next step would leave the region
    step = visited[1][2] - visited[0][2]
    assert len(visited) >= 2
    assert [v[2] for v in visited] == [52 + k * step for k in range(len(visited))]
    assert not lo[2] <= at[2] + step < hi[2]


def test_training_with_moves_needs_its_wider_region(tmp_path: Path) -> None:
    narrow = training.training_volumes(1, (16, 64, 64))  # padded for one move
    with pytest.raises(ValueError, match="region"):
        training.train(narrow, 1, tmp_path / "n.npz", batch=1, moves=3)
    wide = training.training_volumes(1, (16, 64, 64), pad=training.region_half(3))
    net = training.train(wide, 1, tmp_path / "w.npz", batch=1, moves=3)
    assert np.isfinite(net.meta["final_loss"]) and net.meta["train_moves"] == 3
    assert net.meta["history"][-1].endswith("3 moves")
