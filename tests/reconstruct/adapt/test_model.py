"""The adapter's networks: a deterministic forward pass, blocks equal to the whole volume, weights
that round-trip, and named errors for bad weights and settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from connectome_query.reconstruct import io, synth
from connectome_query.reconstruct.adapt import model, training
from connectome_query.reconstruct.errors import ReconstructError

VS = (40.0, 16.0, 16.0)


def _adapter(seed: int = 0) -> model.Adapter:
    rng = np.random.default_rng(seed)
    spec = model.generator_layers()
    return model.Adapter(model.init(spec, rng), model.init(spec, rng),
                         {model.VOXEL_SIZE_KEY: list(VS)})


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return synth.synthesize(synth.SynthConfig((16, 72, 84), VS, seed=3, style="b")).image[5:11]


def test_forward_is_deterministic_given_weights(image: np.ndarray, tmp_path: Path) -> None:
    ad = _adapter()
    first = model.translate(ad, image)
    assert first.dtype == np.uint8 and first.shape == image.shape
    assert np.array_equal(first, model.translate(ad, image))
    # the same weights through a file give the same translation; other weights another
    io.save_adapter(tmp_path / "a.npz", ad)
    assert np.array_equal(first, model.translate(io.load_adapter(tmp_path / "a.npz"), image))
    assert not np.array_equal(first, model.translate(_adapter(1), image))


def test_sections_are_translated_independently(image: np.ndarray) -> None:
    """2-D per section: a section's translation does not depend on its neighbours."""
    ad = _adapter()
    whole = model.translate(ad, image)
    assert np.array_equal(whole[2:3], model.translate(ad, image[2:3]))


def test_a_block_with_its_context_equals_the_whole(image: np.ndarray) -> None:
    """A block at even in-plane offsets, read with HALO of context, is translated exactly as
    in the whole volume (the generator's reach stays inside the context)."""
    ad = _adapter()
    whole = model.translate(ad, image)
    _, hy, hx = model.HALO
    y0, y1, x0, x1 = 20, 52, 34, 66
    region = image[:, y0 - hy:y1 + hy, x0 - hx:x1 + hx]
    assert np.array_equal(model.translate_region(ad.g_ba, region), whole[:, y0:y1, x0:x1])


def test_bad_weight_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ReconstructError, match=r"adapter: .*missing\.npz does not exist"):
        io.load_adapter(tmp_path / "missing.npz")
    np.savez(tmp_path / "junk.npz", format=np.array("something else"))
    with pytest.raises(ReconstructError, match=r"junk\.npz is not saved adapter weights.*format"):
        io.load_adapter(tmp_path / "junk.npz")
    arrays = model.to_arrays(_adapter())
    arrays["w3"] = arrays["w3"][:, :5]
    np.savez(tmp_path / "shape.npz", **arrays)
    with pytest.raises(ReconstructError, match="layer 3 has shape"):
        io.load_adapter(tmp_path / "shape.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(ReconstructError, match=r"text\.npz"):
        io.load_adapter(tmp_path / "text.npz")


def test_voxel_size_and_settings_are_checked() -> None:
    ad = _adapter()
    model.check_voxel_size(ad, VS)
    with pytest.raises(ValueError, match="voxel size"):
        model.check_voxel_size(ad, (30.0, 8.0, 8.0))
    with pytest.raises(ValueError, match="lacks"):
        model.check_voxel_size(model.Adapter(ad.g_ba, ad.g_ab, {}), VS)
    for kwargs, word in (({"crop": (4, 30, 64)}, "crop"), ({"batch": 0}, "batch"),
                         ({"lr": 0.0}, "lr"), ({"cycle": -1.0}, "loss weights")):
        with pytest.raises(ValueError, match=word):
            training.TrainConfig(**kwargs).check()  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="uint8"):
        model.translate(ad, np.zeros((2, 32, 32), np.float32))
