"""The FFN as the run's segmentation stage: `segmentation.zarr` from the image and the
affinities' boundary map, in place of the watershed.

Block by block on the engine (`ffn.blockwise`): each block, with a margin of context, reads the
prepared image (as the affinity network sees it) and the affinities, seeds at the peaks of the
distance transform of one minus their lowest link, flood-fills in two seed orders and keeps their
consensus; with the volume's defect masks, masked voxels are then cleared and objects split
where only masked voxels joined them. Objects are matched across block faces by their overlap,
and across runs of wholly masked sections as the watershed's segments are (`engine.gaps`).
What follows (synapses, skeletons, compartments, scores) reads `segmentation.zarr` as it reads
the watershed's.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from connectome_query.reconstruct import io
from connectome_query.reconstruct.engine import image
from connectome_query.reconstruct.engine.context import Run, masked
from connectome_query.reconstruct.engine.grid import Box
from connectome_query.reconstruct.engine.runner import Engine
from connectome_query.reconstruct.engine.segmentation import read_affinities
from connectome_query.reconstruct.ffn import blockwise, inference, model


@functools.lru_cache(maxsize=2)
def _net_predictor(path: str) -> model.NetPredictor:
    """The network's predictor, compiled once per worker process."""
    return model.NetPredictor(io.load_ffn(Path(path)))


@dataclass(frozen=True)
class RunInputs:
    """A run's inputs to the FFN's blocks: prepared image, boundary map, defect masks."""

    run: Run
    sections_path: str
    affs_path: str

    def image(self, box: Box) -> np.ndarray:
        return image.prepared(self.run, box, image.load(Path(self.sections_path)))

    def boundary(self, box: Box) -> np.ndarray:
        # one plane more at the high side: a voxel's link to the next voxel counts
        hi = tuple(min(h + 1, s) for h, s in zip(box.hi, self.run.shape, strict=True))
        affs = read_affinities(Path(self.affs_path), Box(box.lo, hi))  # type: ignore[arg-type]
        return inference.boundary_of_affinities(affs)[tuple(slice(0, n) for n in box.shape)]

    def masked(self, box: Box) -> np.ndarray | None:
        return masked(self.run, box)[0]

    def predictor(self) -> inference.Predictor:
        assert self.run.ffn_path is not None
        return _net_predictor(self.run.ffn_path)


def check_net(path: Path, voxel_size_zyx: tuple[float, float, float]) -> None:
    """Refuse missing or foreign weights, or weights trained at another voxel size."""
    from connectome_query.reconstruct.errors import ReconstructError

    net = io.load_ffn(path)
    try:
        model.check_voxel_size(net, voxel_size_zyx)
        inference.check_geometry(net.fov, net.delta)
    except ValueError as e:
        raise ReconstructError(f"flood-filling network {path}: {e}") from e


def segment(engine: Engine, run: Run, sections_path: Path, affs_path: Path) -> dict[int, int]:
    """Segment the volume into `segmentation.zarr` with the FFN; each segment's voxel count."""
    assert run.ffn_path is not None
    net = io.load_ffn(Path(run.ffn_path))
    bw = blockwise.Blockwise(run.shape, run.block, blockwise.default_margin(net.fov),
                             run.voxel_size_zyx, str(run.work("")), inference.FFNParams(),
                             net.fov, net.delta)
    return blockwise.segment(engine, bw, RunInputs(run, str(sections_path), str(affs_path)),
                             run.path("segmentation.zarr"), run.attributes)
