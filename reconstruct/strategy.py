"""How a run holds its volume: whole in memory, or slab by slab along z. One interface, two ways.

`WholeVolume` predicts and segments the volume at once and finds synapses and skeletons on it.
`Slabs` (volumes deeper than `block_sections`) writes affinities and cleft probabilities to zarr,
segments slab by slab and joins the slabs (`segment.seeded_segmentation_blockwise`), and finds
synapses, somata and skeletons on slabs of the segmentation read back with halos; only scoring
against a truth reads the whole segmentation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from connectome_query.reconstruct import (
    affinity_net,
    boundary,
    io,
    prediction,
    segment,
    skeleton,
    synapses,
)
from connectome_query.reconstruct.progress import Tick

Skeletons = tuple[dict[int, skeleton.Skel], pd.DataFrame, pd.DataFrame]
"""(skeleton of each segment, segments table, synapses with their postsynaptic compartment)."""


@dataclass(frozen=True)
class RunInputs:
    """What every step of a run reads."""

    img: np.ndarray  # the EM image (z, y, x) uint8
    voxel_size_zyx: tuple[float, float, float]
    out: Path  # the run directory
    model: boundary.AffinityModel  # the voxel classifier (clefts)
    net: affinity_net.AffinityNet | None  # the affinity network, unless affinities are given
    affinities_path: Path | None  # affinities made elsewhere
    augment: bool  # average the network over 8 in-plane flips and transposes
    params: segment.SegParams | None
    with_baseline: bool  # also segment by threshold + connected components, to score it
    tick: Tick

    @property
    def voxel_size_xyz(self) -> tuple[float, float, float]:
        vz, vy, vx = self.voxel_size_zyx
        return vx, vy, vz

    @property
    def attributes(self) -> dict[str, Any]:
        """The zarr attributes of the run's volumes."""
        return {"voxel_size_nm_xyz": list(self.voxel_size_xyz)}


class Strategy(Protocol):
    """The steps of a run that depend on how the volume is held; called in this order."""

    slab_sections: int | None  # sections per slab, None when the volume is held whole

    def segment(self, timings: dict[str, float]) -> None:
        """Affinities and segmentation (segmentation.zarr); `predict_s`, `segment_s`."""

    def synapses(self) -> pd.DataFrame:
        """Cleft probability and the synapse table (without compartments)."""

    def skeletons(self, syn: pd.DataFrame) -> Skeletons:
        """Skeletons, somata, compartments and classes; segmentation.precomputed."""

    def segmentation(self) -> np.ndarray:
        """The whole segmentation (for scoring)."""

    def baseline(self) -> np.ndarray | None:
        """The threshold + connected components baseline, when it was made."""


class WholeVolume:
    """The volume at once, in memory."""

    slab_sections: int | None = None

    def __init__(self, run: RunInputs) -> None:
        self.run = run
        self.seg: np.ndarray | None = None
        self.base: np.ndarray | None = None

    def segment(self, timings: dict[str, float]) -> None:
        run = self.run
        t = time.perf_counter()
        if run.affinities_path is not None:
            affs = io.read_affinities(Path(run.affinities_path), run.img.shape)
        else:
            run.tick("predicting affinities (network)", 0.4)
            assert run.net is not None
            affs, _ = affinity_net.predict(run.net, run.img, augment=run.augment)
        timings["predict_s"] = time.perf_counter() - t
        run.tick("segmenting", 0.45)
        t = time.perf_counter()
        seg = segment.seeded_segmentation(affs, run.voxel_size_zyx, run.params)
        timings["segment_s"] = time.perf_counter() - t
        if run.with_baseline:  # the naive baseline, scored beside ours
            self.base = segment.threshold_components(
                affs, 0.5, (run.params or segment.SegParams()).min_size)
        del affs
        io.write_zarr(run.out / "segmentation.zarr", seg, run.attributes)
        pc = io.create_precomputed(run.out / "segmentation.precomputed", seg.shape,
                                   run.voxel_size_xyz)
        io.write_precomputed_block(pc, 0, seg)
        self.seg = seg

    def synapses(self) -> pd.DataFrame:
        run = self.run
        cleft = prediction.clefts(run.model, run.img, run.voxel_size_zyx, run.tick)
        assert cleft is not None
        return synapses.detect(cleft, self.segmentation(), run.img, run.voxel_size_zyx)

    def skeletons(self, syn: pd.DataFrame) -> Skeletons:
        seg = self.segmentation()
        skels = skeleton.skeletonize(seg, self.run.voxel_size_zyx)
        seg_df, syn = skeleton.annotate(seg, syn, self.run.voxel_size_zyx, skels)
        return skels, seg_df, syn

    def segmentation(self) -> np.ndarray:
        assert self.seg is not None, "segment() first"
        return self.seg

    def baseline(self) -> np.ndarray | None:
        return self.base


class Slabs:
    """The volume slab by slab: affinities, cleft probability and labels live in zarr."""

    def __init__(self, run: RunInputs, block_sections: int) -> None:
        self.run = run
        self.slab_sections: int | None = block_sections
        self.sections = block_sections
        self.labels = io.ZarrLabels(run.out / "segmentation.zarr", run.img.shape,
                                    run.attributes)

    def segment(self, timings: dict[str, float]) -> None:
        run = self.run
        t = time.perf_counter()
        if run.affinities_path is not None:
            apath = Path(run.affinities_path)
        else:
            assert run.net is not None
            apath = run.out / "affinities.zarr"
            prediction.affinities_to_zarr(run.net, run.img, apath, self.sections,
                                          run.augment, run.tick)
        ast = io.open_affinities(apath, run.img.shape)
        timings["predict_s"] = time.perf_counter() - t
        run.tick("segmenting slab by slab", 0.45)
        t = time.perf_counter()
        segment.seeded_segmentation_blockwise(
            lambda z0, z1: io.read_affinity_block(ast, apath, z0, z1), run.img.shape,
            run.voxel_size_zyx, self.labels, run.params, slab=self.sections)
        timings["segment_s"] = time.perf_counter() - t

    def synapses(self) -> pd.DataFrame:
        run = self.run
        cpath = run.out / "clefts.zarr"
        cst = io.create_zarr(cpath, run.img.shape, "float32", attributes=run.attributes)
        prediction.clefts(run.model, run.img, run.voxel_size_zyx, run.tick,
                          slab=min(64, self.sections), store=cst)
        return synapses.detect_blockwise(
            lambda z0, z1: (io.read_block(cst, slice(z0, z1), cpath, "cleft probability"),
                            self.labels.read(z0, z1), run.img[z0:z1]),
            run.img.shape[0], run.voxel_size_zyx, self.sections)

    def _sizes_and_precomputed(self) -> dict[int, int]:
        """One pass over the slabs: each segment's voxel count, and the precomputed copy."""
        run = self.run
        nz = run.img.shape[0]
        sizes: dict[int, int] = {}
        pc = io.create_precomputed(run.out / "segmentation.precomputed", run.img.shape,
                                   run.voxel_size_xyz)
        for z0 in range(0, nz, self.sections):
            block = self.labels.read(z0, min(z0 + self.sections, nz))
            io.write_precomputed_block(pc, z0, block)
            for sid, n in skeleton.segment_sizes(block).items():
                sizes[sid] = sizes.get(sid, 0) + n
        return sizes

    def skeletons(self, syn: pd.DataFrame) -> Skeletons:
        nz, vs = self.run.img.shape[0], self.run.voxel_size_zyx
        sizes = self._sizes_and_precomputed()
        skels = skeleton.skeletonize_blockwise(self.labels.read, nz, vs, sizes, self.sections)
        somata = skeleton.find_somata_blockwise(self.labels.read, nz, vs, self.sections)
        seg_df, syn = skeleton.annotate_tables(somata, sizes, syn, skels)
        return skels, seg_df, syn

    def segmentation(self) -> np.ndarray:
        return self.labels.read(0, self.run.img.shape[0])

    def baseline(self) -> np.ndarray | None:
        return None


def choose(run: RunInputs, block_sections: int) -> Strategy:
    """Whole when the volume has at most `block_sections` sections, else slab by slab."""
    if run.img.shape[0] <= block_sections:
        return WholeVolume(run)
    return Slabs(run, block_sections)
