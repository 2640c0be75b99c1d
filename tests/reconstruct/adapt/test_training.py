"""Training the adapter: a few steps on a toy pair lower its cycle and segmentation losses on
fixed crops; a resumed run equals an unbroken one; style-B truth is never needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from connectome_query.reconstruct import io, synth, training
from connectome_query.reconstruct.adapt import model
from connectome_query.reconstruct.adapt import training as adapt_training

VS = (40.0, 16.0, 16.0)
CFG = adapt_training.TrainConfig(crop=(2, 32, 32), batch=2, lr=2e-3, checkpoint_every=3)


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    a = synth.synthesize(synth.SynthConfig((16, 64, 64), VS, seed=5)).image
    b = synth.synthesize(synth.SynthConfig((16, 64, 64), VS, seed=6, style="b")).image
    return a, b


def _losses(ad: model.Adapter, disc: dict, seg: list, a: np.ndarray,
            b: np.ndarray) -> dict[str, float]:
    """The loss terms of `ad` on fixed crops, computed outside the training loop."""
    import jax.numpy as jnp

    gen = {"g_ab": ad.g_ab, "g_ba": ad.g_ba}
    _, parts = adapt_training.losses_fn(gen, disc, seg, jnp.asarray(a), jnp.asarray(b),
                                        CFG.cycle, CFG.segmentation)
    return {k: float(parts[k]) for k in ("cycle", "seg")}


def test_a_few_steps_lower_the_losses(pair: tuple[np.ndarray, np.ndarray],
                                      tmp_path: Path) -> None:
    a_img, b_img = pair
    seg = io.load_net(training.DEFAULT_NET)
    # fixed crops the training never draws (another seed)
    a, b = adapt_training.batches([a_img], [b_img],
                                  adapt_training.TrainConfig(crop=(2, 32, 32), batch=4,
                                                             seed=99), 0)
    fresh = adapt_training.fresh_state([a_img], [b_img], CFG)
    start = model.Adapter(fresh["gen"]["g_ba"], fresh["gen"]["g_ab"])
    log = tmp_path / "log.jsonl"
    trained = adapt_training.train([a_img], [b_img], 20, tmp_path / "c.npz", seg, CFG, log)
    before = _losses(start, fresh["disc"], seg.params, a, b)
    after = _losses(trained, fresh["disc"], seg.params, a, b)
    assert after["cycle"] < 0.7 * before["cycle"]
    assert after["seg"] < before["seg"]
    lines = log.read_text().splitlines()
    assert len(lines) == 20 and '"g_adv"' in lines[0]


def test_resumed_training_equals_unbroken(pair: tuple[np.ndarray, np.ndarray],
                                          tmp_path: Path) -> None:
    a_img, b_img = pair
    one = adapt_training.train([a_img], [b_img], 4, tmp_path / "one.npz", None, CFG)
    adapt_training.train([a_img], [b_img], 3, tmp_path / "two.npz", None, CFG)
    two = adapt_training.train([a_img], [b_img], 4, tmp_path / "two.npz", None, CFG)
    for (w1, b1), (w2, b2) in zip(one.g_ba + one.g_ab, two.g_ba + two.g_ab, strict=True):
        np.testing.assert_allclose(w1, w2, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b1, b2, rtol=1e-5, atol=1e-6)
    (tmp_path / "bad.npz").write_text("x")
    with pytest.raises(ValueError, match=r"bad\.npz cannot be read"):
        adapt_training.train([a_img], [b_img], 4, tmp_path / "bad.npz", None, CFG)
    with pytest.raises(ValueError, match="style-B volume of shape"):
        adapt_training.train([a_img], [b_img[:1]], 4, tmp_path / "x.npz", None, CFG)
