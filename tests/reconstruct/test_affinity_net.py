"""The affinity U-Net: weights round trip, tiled prediction, training, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from connectome_query.cli.main import app
from connectome_query.reconstruct import affinity_net, boundary, io, synth
from connectome_query.reconstruct.errors import ReconstructError

VS = (40.0, 16.0, 16.0)


def test_weights_round_trip(tmp_path: Path, shipped: affinity_net.AffinityNet) -> None:
    p = tmp_path / "net.npz"
    io.save_net(p, shipped)
    back = io.load_net(p)
    assert back.meta == shipped.meta
    for (w0, b0), (w1, b1) in zip(shipped.params, back.params, strict=True):
        assert np.array_equal(w0, w1) and np.array_equal(b0, b1)


def test_prediction_contract_and_tiling(shipped: affinity_net.AffinityNet,
                                        small_volume: synth.Slab,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    affs, cleft = affinity_net.predict(shipped, small_volume.image)
    assert affs.shape == (3, 24, 48, 40) and affs.dtype == np.float32
    assert cleft.shape == (24, 48, 40)
    assert float(affs.min()) >= 0 and float(affs.max()) <= 1
    assert not affs[0, 0].any() and not affs[1, :, 0].any() and not affs[2, :, :, 0].any()
    # many small tiles give the same answer as one tile: the halo covers the receptive field
    monkeypatch.setattr(affinity_net, "TILE", (8, 16, 16))
    tiled, tiled_cleft = affinity_net.predict(shipped, small_volume.image)
    assert np.allclose(tiled, affs, atol=1e-4)
    assert np.allclose(tiled_cleft, cleft, atol=1e-4)


def test_shipped_net_separates_cells(shipped: affinity_net.AffinityNet,
                                     clean_dir: Path) -> None:
    """Against the volume's own truth: edges inside cells score high, edges between two
    cells low (independent of the segmenter)."""
    img = io.read_image(clean_dir, io.read_volume_info(clean_dir))
    truth = io.read_truth(clean_dir, img.shape)
    assert truth is not None
    affs, _ = affinity_net.predict(shipped, img)
    lab = truth["segmentation"]
    true = boundary.true_affinities(lab)
    inside = true > 0.5
    cellcell = np.zeros_like(inside)
    cellcell[0, 1:] = (lab[1:] != lab[:-1]) & (lab[1:] != 0) & (lab[:-1] != 0)
    cellcell[1, :, 1:] = (lab[:, 1:] != lab[:, :-1]) & (lab[:, 1:] != 0) & (lab[:, :-1] != 0)
    cellcell[2, :, :, 1:] = ((lab[:, :, 1:] != lab[:, :, :-1]) & (lab[:, :, 1:] != 0)
                             & (lab[:, :, :-1] != 0))
    assert cellcell.sum() > 50
    assert float((affs[inside] > 0.5).mean()) > 0.85
    assert float((affs[cellcell] < 0.5).mean()) > 0.8


def test_training_lowers_the_loss(small_volume: synth.Slab) -> None:
    vol = [(small_volume.image, small_volume.labels, small_volume.clefts != 0)]
    losses: list[float] = []
    net = affinity_net.train(vol, 40, seed=3, crop=(8, 32, 32), batch=1,
                             tick=lambda _i, loss: losses.append(loss))
    assert len(losses) == 40 and np.isfinite(losses).all()
    assert np.mean(losses[-10:]) < np.mean(losses[:5])
    assert net.meta["steps"] == 40
    with pytest.raises(ValueError, match="at least"):
        affinity_net.train([(small_volume.image[:4], small_volume.labels[:4],
                             small_volume.clefts[:4] != 0)], 1)


def test_bad_weight_files(tmp_path: Path, shipped: affinity_net.AffinityNet) -> None:
    with pytest.raises(ReconstructError, match="does not exist"):
        io.load_net(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(ReconstructError, match=r"junk\.npz"):
        io.load_net(junk)
    arrays = affinity_net.to_arrays(shipped)
    arrays["w2"] = arrays["w2"][:, :3]
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ReconstructError, match="layer 2"):
        io.load_net(bad)


def test_cli_train_and_use(tmp_path: Path, clean_dir: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "net.npz"
    r = runner.invoke(app, ["train-affinity-net", str(out), "--steps", "2", "--volumes", "1"])
    assert r.exit_code == 0, r.output
    assert io.load_net(out).meta["steps"] == 2
    bad = tmp_path / "bad.npz"
    bad.write_text("nope")
    r = runner.invoke(app, ["reconstruct", str(clean_dir), str(tmp_path / "run"), "--net",
                            str(bad), "--quiet"])
    assert r.exit_code == 1
    assert "bad.npz" in r.output


def test_augmented_prediction_maps_back_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a stand-in predictor that returns the true affinities of whatever (flipped,
    transposed) label image it is given, the 8-fold average must equal the plain answer:
    this checks the flips, the transpose and the -1/+1 neighbour shift."""
    lab = synth.synthesize(
        synth.SynthConfig((16, 40, 40), VS, "clean", 5)).labels.astype(np.int64)

    def oracle(_net: object, a: np.ndarray, _tile: object = None) -> tuple[np.ndarray,
                                                                             np.ndarray]:
        return boundary.true_affinities(a.astype(np.int64)), (a % 7).astype(np.float32)

    monkeypatch.setattr(affinity_net, "prepare", lambda img: img.astype(np.float32))
    monkeypatch.setattr(affinity_net, "_predict_prepared", oracle)
    net = affinity_net.AffinityNet(params=[])
    plain, c0 = affinity_net.predict(net, lab.astype(np.float32))
    aug, c1 = affinity_net.predict(net, lab.astype(np.float32), augment=True)
    assert plain.any()
    assert np.array_equal(plain, aug)
    assert np.allclose(c0, c1)


def test_loss_weights_give_thin_cells_their_share() -> None:
    """A thin axon beside a big cell: each cell's in-cell edges, and each touching pair's
    cell-cell edges, carry at least the balanced half of their share divided evenly,
    however few voxels they have; edges on the first plane carry nothing."""
    lab = np.zeros((4, 16, 16), np.uint64)
    lab[:, :, :10] = 1   # big cell
    lab[:, 7:9, 11:13] = 2  # thin axon, 2x2 voxels in-plane, touching nothing
    lab[:, 2:4, 10:12] = 3  # thin axon touching the big cell along x
    _, m = affinity_net.loss_weights(lab, np.zeros(lab.shape, bool))
    assert np.all(m >= 0)
    for c in range(3):
        hi = [slice(None)] * 3
        hi[c] = slice(1, None)
        lo = [slice(None)] * 3
        lo[c] = slice(None, -1)
        a, b = lab[tuple(hi)], lab[tuple(lo)]
        w = m[c][tuple(hi)]
        same = (a == b) & (a != 0)
        total = float(m[c].sum())
        cells = [k for k in (1, 2, 3) if (same & (a == k)).any()]
        for k in cells:  # 0.2 of the loss is split evenly over the cells in the crop
            assert w[same & (a == k)].sum() >= 0.2 * total / len(cells) - 1e-3 * total
        first = [slice(None)] * 3
        first[c] = slice(0, 1)
        assert not m[c][tuple(first)].any()
    hi = (slice(None), slice(None), slice(1, None))
    lo = (slice(None), slice(None), slice(None, -1))
    touch = (lab[hi] == 3) & (lab[lo] == 1)
    assert touch.any()
    w = m[2][hi]
    # the only touching pair holds at least the balanced part (0.15) of the cell-cell share
    assert w[touch].sum() >= 0.15 * float(m[2].sum()) - 1e-3 * float(m[2].sum())


@pytest.mark.parametrize("shape", [(64, 64, 64), (256, 256, 256), (65, 257, 513),
                                   (7, 9, 11), (256, 1024, 1024)])
def test_tiles_cover_the_volume_evenly_within_the_limit(shape: tuple[int, int, int]) -> None:
    tile = affinity_net.tile_shape(shape)
    for axis, (s, t, limit) in enumerate(zip(shape, tile, affinity_net.TILE, strict=True)):
        n = -(-s // t)
        assert t <= limit or (axis > 0 and t == limit + 1)
        assert n * t >= s  # covered
        assert n == -(-s // limit)  # no more tiles than the limit forces
        assert n * t - s < n + (n if axis > 0 else 0)  # padding under a row per tile
        if axis > 0:
            assert t % 2 == 0
