"""The restorer: deterministic, changes flagged voxels only, a block with its context equals the
whole volume, a few steps on toy damaged/clean pairs lower its losses; the damage carries the
front end's flags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from connectome_query.reconstruct import io, synth, training
from connectome_query.reconstruct.adapt import degrade, restore
from connectome_query.reconstruct.adapt import restore_training as rt
from connectome_query.reconstruct.align.masks import Defect

VS = (40.0, 16.0, 16.0)
CFG = rt.RestoreConfig(crop=(2, 32, 32), batch=4, lr=3e-3, checkpoint_every=5)


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    return synth.synthesize(synth.SynthConfig((16, 64, 64), VS, seed=5)).image[:12]


def _random(seed: int) -> restore.Restorer:
    """A restorer whose output layer is not zero (a fresh one returns its base)."""
    ps = restore.init(seed)
    rng = np.random.default_rng(seed)
    w, b = ps[-1]
    ps[-1] = ((rng.standard_normal(w.shape) * 0.3).astype(np.float32), b)
    return restore.Restorer(ps)


def test_damage_carries_its_flags(clean: np.ndarray) -> None:
    plan = list(zip((1, 3, 5, 7, 9), degrade.KINDS, strict=True))
    damaged, flags = degrade.degrade_volume(clean, plan, 1)
    changed = damaged != clean
    assert not changed[flags == 0].any()  # nothing outside the flags
    for z, kind in plan:
        f = flags[z]
        if kind in ("blur", "missing"):
            assert (f == (Defect.BLUR if kind == "blur" else Defect.MISSING)).all()
        else:
            value = 0 if kind in ("fold", "partial") else 255
            assert 0 < (f != 0).mean() < 0.7 and (damaged[z][f != 0] == value).all()
    with pytest.raises(ValueError, match="degradation must be one of"):
        degrade.degrade_section(clean[0], "smudge", np.random.default_rng(0))


def test_restoration_is_deterministic_and_local(clean: np.ndarray) -> None:
    damaged, flags = degrade.degrade_volume(clean, degrade.bench_plan(12), 2)
    r = _random(3)
    one, two = restore.restore(r, damaged, flags), restore.restore(r, damaged, flags)
    assert np.array_equal(one, two)
    keep = flags == 0
    assert np.array_equal(one[keep], damaged[keep]) and not np.array_equal(one, damaged)
    # a block read with the restorer's context equals the same voxels of the whole
    hz, hy, hx = restore.HALO
    pads = [(h, h) for h in restore.HALO]
    big, bigf = np.pad(damaged, pads, mode="reflect"), np.pad(flags, pads, mode="reflect")
    z0, y0, x0, dz, dy, dx = 4, 10, 20, 5, 30, 26
    block = restore.restore_region(r.params, big[z0:z0 + dz + 2 * hz, y0:y0 + dy + 2 * hy,
                                                 x0:x0 + dx + 2 * hx],
                                   bigf[z0:z0 + dz + 2 * hz, y0:y0 + dy + 2 * hy,
                                        x0:x0 + dx + 2 * hx])
    assert np.array_equal(block, one[z0:z0 + dz, y0:y0 + dy, x0:x0 + dx])
    # the restored flags are cleared, NO_TISSUE stays
    f = np.array([Defect.BLUR | Defect.NO_TISSUE, Defect.FOLD, 0], np.uint8)
    assert restore.cleared(f).tolist() == [int(Defect.NO_TISSUE), 0, 0]
    with pytest.raises(ValueError, match="flags of its shape"):
        restore.restore(r, damaged, flags[:3])


def test_a_few_steps_lower_the_losses(clean: np.ndarray, tmp_path: Path) -> None:
    import jax
    import jax.numpy as jnp

    seg = io.load_net(training.DEFAULT_NET)
    # a toy damaged/clean pair, stepped on again and again
    img, flags, target = rt.pairs([clean], rt.RestoreConfig(crop=(2, 32, 32), batch=4,
                                                            seed=99), 0)
    blur, lost = restore.flag_planes(flags)
    args = [jnp.asarray(v) for v in (img, blur, lost, target)]

    def losses(params: list) -> dict[str, float]:
        _, parts = rt.losses_fn(params, seg.params, *args, CFG.segmentation)
        return {k: float(v) for k, v in parts.items()}

    params = jax.tree_util.tree_map(jnp.asarray, restore.init(CFG.seed))
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    opt = (zeros, zeros, jnp.float32(0))
    before = losses(params)
    step = rt.compiled_step(CFG.segmentation, True)
    sp = jax.tree_util.tree_map(jnp.asarray, list(seg.params))
    for _ in range(12):
        params, opt, _ = step(params, opt, sp, *args, CFG.lr)
    after = losses(params)
    assert after["l1"] < 0.95 * before["l1"] and after["seg"] < before["seg"]
    # the training loop: logged, checkpointed, resumed (nothing more to do at step 3)
    log = tmp_path / "log.jsonl"
    trained = rt.train([clean], 3, tmp_path / "c.npz", seg, CFG, log)
    assert len(log.read_text().splitlines()) == 3
    again = rt.train([clean], 3, tmp_path / "c.npz", seg, CFG)
    for (w1, _), (w2, _) in zip(trained.params, again.params, strict=True):
        np.testing.assert_allclose(w1, w2, rtol=1e-6)
    path = tmp_path / "r.npz"
    io.save_restorer(path, trained)
    assert io.load_restorer(path).meta["steps"] == 3
    with pytest.raises(ValueError, match="smaller than the crop"):
        rt.train([clean[:3]], 2, tmp_path / "x.npz", None, CFG)
