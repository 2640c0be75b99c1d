"""Prediction slab by slab equals the whole-volume prediction."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from connectome_query.reconstruct import affinity_net, io, prediction, synth


def test_slab_by_slab_prediction_equals_the_whole_volume(
        shipped: affinity_net.AffinityNet, small_volume: synth.Slab, tmp_path: Path) -> None:
    whole, _ = affinity_net.predict(shipped, small_volume.image)
    path = tmp_path / "affinities.zarr"
    prediction.affinities_to_zarr(shipped, small_volume.image, path, 7, augment=False)
    slabs = io.read_affinities(path, small_volume.image.shape)
    np.testing.assert_allclose(slabs, whole, atol=1e-4)
