"""The voxel classifier: class probabilities in tiles equal those in one piece."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from connectome_query.reconstruct import boundary, io, synth


def test_class_probabilities_in_tiles_equal_one_piece(model_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The filter bank goes in in-plane tiles with a margin (memory); on a noisy volume
    (missing and shifted sections) the probabilities equal the untiled ones exactly."""
    vs = (40.0, 16.0, 16.0)
    model = io.load_model(model_path)
    img = synth.render(synth.make_plan(synth.SynthConfig((24, 112, 96), vs, "noisy", 2))).image
    monkeypatch.setattr(boundary, "TILE_YX", 10_000)
    whole = boundary.probabilities(model, img, vs)
    monkeypatch.setattr(boundary, "TILE_YX", 40)
    tiled = boundary.probabilities(model, img, vs)
    assert np.array_equal(whole, tiled)
    # a margin narrower than the filters reach would not be equal
    monkeypatch.setattr(boundary, "FEATURE_MARGIN", 2)
    assert not np.array_equal(whole, boundary.probabilities(model, img, vs))
