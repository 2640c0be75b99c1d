"""The FFN as the run's segmentation stage: `segmentation.zarr` from the image and the
affinities' boundary map, in place of the watershed.

One task segments the whole volume (the canvas needs every voxel of an object in one place; the
blockwise form, subvolumes with overlap reconciled across faces, is still to come): it reads the
prepared image (as the affinity network sees it) and the affinities, seeds at the peaks of the
distance transform of one minus their lowest link, flood-fills in two seed orders and keeps their
consensus; with the volume's defect masks, masked voxels are then cleared and objects split
where only masked voxels joined them. What follows (synapses, skeletons, compartments, scores)
reads `segmentation.zarr` as it reads the watershed's.
"""

from __future__ import annotations

from pathlib import Path

import fastremap
import numpy as np

from connectome_query.reconstruct import io
from connectome_query.reconstruct.engine import image
from connectome_query.reconstruct.engine.context import Run, masked, write
from connectome_query.reconstruct.engine.grid import Box
from connectome_query.reconstruct.engine.runner import Engine, Record
from connectome_query.reconstruct.engine.segmentation import read_affinities
from connectome_query.reconstruct.ffn import inference, model


def _ffn_task(item: int, run: Run, sections_path: str, affs_path: str) -> Record:
    assert run.ffn_path is not None
    whole = Box((0, 0, 0), run.shape)
    img = image.prepared(run, whole, image.load(Path(sections_path)))
    boundary = inference.boundary_of_affinities(read_affinities(Path(affs_path), whole))
    net = io.load_ffn(Path(run.ffn_path))
    seg, counts = inference.segment(img, boundary, model.NetPredictor(net), run.voxel_size_zyx,
                                    inference.FFNParams(), net.fov, net.delta)
    bad, _ = masked(run, whole)
    if bad is not None:  # no object passes through a defect
        seg = inference.cut_at_mask(seg, bad)
    write(run.path("segmentation.zarr"), whole, seg)
    ids, sizes = fastremap.unique(seg, return_counts=True)
    keep = ids != 0
    return {"ids": ids[keep].astype(np.int64), "sizes": sizes[keep].astype(np.int64),
            **{k: np.array(v) for k, v in counts.items()}}


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
    io.create_zarr(run.path("segmentation.zarr"), run.shape, "uint64",
                   attributes=run.attributes, delete_existing=False)
    rec = engine.run("segmentation (ffn)", [0], _ffn_task, run, str(sections_path),
                     str(affs_path))[0]
    return {int(i): int(n) for i, n in zip(rec["ids"], rec["sizes"], strict=True)}
