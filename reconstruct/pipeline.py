"""The run: an EM directory in, a run directory out (see RUN_DIR.md), scored when there is a truth.

Inputs are read and checked before any slow step; how the volume is held (whole, or slab by slab
for deep volumes) is the `strategy`'s business.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from connectome_query.reconstruct import affinity_net, boundary, io, scoring, segment, skeleton, xp
from connectome_query.reconstruct.errors import ReconstructError
from connectome_query.reconstruct.progress import Tick, no_progress
from connectome_query.reconstruct.strategy import RunInputs, Strategy, choose
from connectome_query.reconstruct.training import DEFAULT_NET, default_model

BLOCK_SECTIONS = 128
"""Volumes of more sections than this are segmented slab by slab, this many at a time (at
1024 x 1024 in-plane, one slab's float32 affinities take 1.6 GB)."""


def _load_net(net_path: Path | None, vs: tuple[float, float, float],
              em_dir: Path) -> affinity_net.AffinityNet:
    """The affinity network, refused when it was trained at another voxel size."""
    npath = Path(net_path) if net_path is not None else DEFAULT_NET
    net = io.load_net(npath)
    try:
        affinity_net.check_voxel_size(net, vs)
    except ValueError as e:
        raise ReconstructError(f"affinity network {npath} does not fit "
                               f"{em_dir / 'volume.json'} field 'voxel_size_nm': {e}") from e
    return net


def _load_model(model_path: Path | None, vs: tuple[float, float, float], seed: int, out: Path,
                tick: Tick) -> boundary.AffinityModel:
    """The voxel classifier: loaded, or trained on synthetic volumes and saved in `out`."""
    if model_path is not None:
        model = io.load_model(Path(model_path))
        if getattr(model, "format", None) != boundary.MODEL_FORMAT:
            raise ReconstructError(f"model: {model_path} is not a {boundary.MODEL_FORMAT} model")
        return model
    model = default_model(vs, seed, tick)
    io.save_model(out / "model.joblib", model)
    return model


def _write_skeletons(folder: Path, skels: dict[int, skeleton.Skel]) -> None:
    """One SWC file per segment with a skeleton."""
    for sid, sk in skels.items():
        n = len(sk.vertices)
        if n == 0:
            continue
        parent = skeleton.parents(sk)
        io.write_swc(folder / f"{sid}.swc", np.arange(1, n + 1), sk.compartment, sk.vertices,
                     sk.radius, np.where(parent >= 0, parent + 1, -1))


def _run_json(info: dict[str, Any], em_dir: Path, shape: tuple[int, ...],
              strategy: Strategy, model_path: Path | None, affinities_path: Path | None,
              net_path: Path | None, augment: bool,
              timings: dict[str, float]) -> dict[str, Any]:
    return {"voxel_size_nm": [float(v) for v in info["voxel_size_nm"]], "shape_zyx": list(shape),
            "source": str(em_dir.resolve()), "seed": info.get("seed"),
            "created_by": io.CREATED_BY, "preset": info.get("preset"),
            "model": str(model_path) if model_path else "model.joblib (trained on synthetic)",
            "affinities": str(affinities_path) if affinities_path else
            f"predicted by {net_path or 'the shipped affinity network'}"
            f"{' (8-fold flip/transpose averaged)' if augment else ''}",
            "segmented_in_slabs_of": strategy.slab_sections,
            "array_backend": xp.backend_name(), "timings_s": timings}


def reconstruct(em_dir: Path, out_dir: Path, model_path: Path | None = None,
                affinities_path: Path | None = None, tick: Tick = no_progress,
                params: segment.SegParams | None = None,
                net_path: Path | None = None, augment: bool = True,
                block_sections: int = BLOCK_SECTIONS) -> dict[str, Any]:
    """EM directory -> run directory (see RUN_DIR.md). Returns metrics (empty without truth).

    A volume of more than `block_sections` sections goes slab by slab after the image is
    read (`strategy.Slabs`); `tick(message, fraction)` is told how far the run is."""
    if block_sections < 1:
        raise ReconstructError(f"block_sections must be at least 1, got {block_sections}")
    em_dir, out = Path(em_dir), Path(out_dir)
    info = io.read_volume_info(em_dir)
    img = io.read_image(em_dir, info)
    truth = io.read_truth(em_dir, img.shape)
    vx, vy, vz = (float(v) for v in info["voxel_size_nm"])
    vs = (vz, vy, vx)
    net = _load_net(net_path, vs, em_dir) if affinities_path is None else None
    out.mkdir(parents=True, exist_ok=True)
    (out / "skeletons").mkdir(exist_ok=True)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    model = _load_model(model_path, vs, int(info.get("seed", 0)), out, tick)
    timings["model_s"] = time.perf_counter() - t
    strategy = choose(RunInputs(img, vs, out, model, net, affinities_path, augment, params,
                                truth is not None, tick), block_sections)
    strategy.segment(timings)
    tick("synapses", 0.55)
    t = time.perf_counter()
    syn = strategy.synapses()
    timings["synapses_s"] = time.perf_counter() - t
    tick("skeletons (kimimaro)", 0.6)
    t = time.perf_counter()
    skels, seg_df, syn = strategy.skeletons(syn)
    timings["skeletons_s"] = time.perf_counter() - t
    _write_skeletons(out / "skeletons", skels)
    io.write_table(out / "segments.parquet", seg_df, io.SEGMENT_COLUMNS)
    io.write_table(out / "synapses.parquet", syn, io.SYNAPSE_COLUMNS)
    io.write_json(out / "run.json", _run_json(info, em_dir, img.shape, strategy, model_path,
                                              affinities_path, net_path, augment, timings))
    result: dict[str, Any] = {}
    if truth is not None:
        tick("metrics", 0.9)
        result = scoring.score_run(strategy.segmentation(), strategy.baseline(), syn, seg_df,
                                   truth, vs)
        io.write_json(out / "metrics.json", result)
    tick("done", 1.0)
    return result
