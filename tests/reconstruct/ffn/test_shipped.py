"""The shipped FFN reproduces the segmentation saved with it on a fixed 64³ volume, block by
block on the engine.

The saved answer (`data/shipped_64x64x64.npz`) was made by `reference_segmentation` with the
weights in `reconstruct/models/ffn.npz`, the stage's settings and blocks of `BLOCK` (two blocks,
so the faces' matching is part of what is reproduced), on the clean synthetic volume of seed
`SEED` (FFN training uses seeds from `training.FFN_TRAINING_SEED`). Retraining the weights or
changing the inference means saving it again:

    uv run python -c "from tests.reconstruct.ffn.test_shipped import save; save()"
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from distributed import Client, LocalCluster

from connectome_query.reconstruct import affinity_net, io, metrics, sections, synth, training
from connectome_query.reconstruct.engine.cluster import ClusterSpec, worker_env
from connectome_query.reconstruct.engine.grid import Box
from connectome_query.reconstruct.engine.manifest import Manifest
from connectome_query.reconstruct.engine.runner import Engine
from connectome_query.reconstruct.ffn import blockwise, inference, model
from connectome_query.reconstruct.ffn import training as ffn_training

SHAPE = (64, 64, 64)  # z, y, x
BLOCK = (32, 64, 64)
SEED = 9
SAVED = Path(__file__).parent / "data" / f"shipped_{'x'.join(map(str, SHAPE))}.npz"
VS = (40.0, 16.0, 16.0)


@dataclass(frozen=True)
class VolumeInputs:
    """The prepared image and the boundary map of the whole volume, and the shipped net."""

    image_: np.ndarray
    boundary_: np.ndarray

    def image(self, box: Box) -> np.ndarray:
        return self.image_[box.slices()]

    def boundary(self, box: Box) -> np.ndarray:
        return self.boundary_[box.slices()]

    def masked(self, box: Box) -> np.ndarray | None:
        return None

    def predictor(self) -> inference.Predictor:
        return model.NetPredictor(io.load_ffn(training.DEFAULT_FFN))


def reference_segmentation(scheduler: str, work: Path) -> tuple[np.ndarray, int]:
    """The FFN's segmentation of the fixed volume and its FOV predictions."""
    assert SEED < ffn_training.FFN_TRAINING_SEED
    s = synth.synthesize(synth.SynthConfig(SHAPE, VS, "clean", seed=SEED))
    affs, _ = affinity_net.predict(io.load_net(training.DEFAULT_NET), s.image)
    inputs = VolumeInputs(sections.prepare(s.image), inference.boundary_of_affinities(affs))
    net = io.load_ffn(training.DEFAULT_FFN)
    bw = blockwise.Blockwise(SHAPE, BLOCK, blockwise.default_margin(net.fov), VS,
                             str(work / "engine"), inference.FFNParams(), net.fov, net.delta)
    manifest = Manifest(work)
    with Client(scheduler) as client:
        blockwise.segment(Engine(client, manifest), bw, inputs, work / "segmentation.zarr")
    seg = io.read_block(io.open_zarr(work / "segmentation.zarr"), (slice(None),) * 3, work)
    n_pred = sum(int(manifest.load(blockwise.STAGE, i)["fov_predictions"])
                 for i in range(len(bw.grid)))
    return seg, n_pred


def save() -> None:
    lc = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0", env=worker_env(1))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            seg, n_pred = reference_segmentation(lc.scheduler_address, Path(tmp))
    finally:
        with contextlib.suppress(TimeoutError):
            lc.close(timeout=60)
    np.savez_compressed(SAVED, segmentation=seg.astype(np.uint32),
                        fov_predictions=np.int64(n_pred))


def test_shipped_weights_load_and_fit_the_synthetic_voxel_size() -> None:
    net = io.load_ffn(training.DEFAULT_FFN)
    model.check_voxel_size(net, VS)
    assert net.fov == model.FOV and net.delta == model.DELTA
    assert "seeds from" in net.meta["trained_on"]


@pytest.mark.slow
def test_shipped_model_reproduces_its_saved_segmentation(tmp_path: Path,
                                                         cluster: ClusterSpec) -> None:
    seg, n_pred = reference_segmentation(cluster.scheduler, tmp_path)
    with np.load(SAVED) as z:
        saved = z["segmentation"].astype(np.uint64)
        saved_pred = int(z["fov_predictions"])
    assert len(np.unique(saved)) > 2  # more than one object: the test can tell partitions apart
    # the same partition, voxel for voxel (ids 1..n by first voxel)
    assert seg.shape == saved.shape == SHAPE
    assert np.array_equal(seg, saved), (
        f"{int((seg != saved).sum())} voxels differ; VOI {metrics.voi(saved, seg)}")
    assert n_pred == saved_pred
