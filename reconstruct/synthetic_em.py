"""Writing a synthetic EM directory (see RUN_DIR.md): the image, the truth volumes and tables,
volume.json, from a `synth.Plan`, slab by slab in one process (`engine/synth.py` renders the same
on Dask and writes its truth here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from connectome_query.reconstruct import io, synth
from connectome_query.reconstruct.progress import Tick, no_progress

SYNTH_SLAB = 32
"""Sections rendered at a time in one process."""


def _synthetic_volume_json(cfg: synth.SynthConfig, plan: synth.Plan) -> dict[str, Any]:
    nz, ny, nx = cfg.shape_zyx
    vz, vy, vx = cfg.voxel_size_zyx
    return {"voxel_size_nm": [vx, vy, vz], "shape_zyx": [nz, ny, nx], "seed": cfg.seed,
            "preset": cfg.preset, "style": cfg.style, "source": "synthetic",
            "created_by": io.CREATED_BY,
            "missing_sections": sorted(plan.missing),
            "shifted_sections": {str(k): list(v) for k, v in sorted(plan.shifts.items())}}


def _write_truth_skeletons(out: Path, nodes: dict[str, np.ndarray]) -> None:
    """truth/skeletons.parquet and one SWC file per cell under truth/skeletons/."""
    sk = pd.DataFrame(nodes)
    io.write_table(out / "truth" / "skeletons.parquet", sk)
    for sid, g in sk.groupby("segment_id"):
        ids = {n: i + 1 for i, n in enumerate(g["node_id"])}
        io.write_swc(out / "truth" / "skeletons" / f"{sid}.swc", np.arange(1, len(g) + 1),
                     g["compartment"].to_numpy(), g[["x", "y", "z"]].to_numpy(),
                     g["radius"].to_numpy(),
                     np.array([ids.get(int(p), -1) for p in g["parent_id"]]))


def write_synthetic_em(out_dir: Path, cfg: synth.SynthConfig,
                       tick: Tick = no_progress) -> dict[str, Any]:
    """Write a synthetic EM directory (image + truth) slab by slab; returns volume.json."""
    out = Path(out_dir)
    (out / "truth" / "skeletons").mkdir(parents=True, exist_ok=True)
    plan = synth.make_plan(cfg)
    nz, ny, nx = cfg.shape_zyx
    vz, vy, vx = cfg.voxel_size_zyx
    attrs = {"voxel_size_nm_xyz": [vx, vy, vz]}
    stores = {name: io.create_zarr(out / path, (nz, ny, nx), dtype, attributes=attrs)
              for name, path, dtype in (("image", "image.zarr", "uint8"),
                                        ("labels", "truth/segmentation.zarr", "uint64"),
                                        ("compartments", "truth/compartments.zarr", "uint8"),
                                        ("clefts", "truth/clefts.zarr", "uint64"))}
    labels_pc = io.create_precomputed(out / "truth" / "segmentation.precomputed", (nz, ny, nx),
                                      (vx, vy, vz))
    image_pc = io.create_precomputed(out / "image.precomputed", (nz, ny, nx), (vx, vy, vz),
                                     dtype="uint8", kind="image")
    n_lab = int(plan.stamp_label.max()) + 1 if len(plan.stamp_label) else 1
    sizes = np.zeros(n_lab, np.int64)
    stats = np.zeros((len(plan.synapses), 9))
    st_vox, inside = synth.stamp_voxels(plan)
    labels_at = np.zeros(len(plan.stamps), np.int64)
    for z0 in range(0, nz, SYNTH_SLAB):
        z1 = min(z0 + SYNTH_SLAB, nz)
        tick(f"synth sections {z0}-{z1}", z0 / nz)
        s = synth.render_slab(plan, z0, z1)
        for name, store in stores.items():
            store[z0:z1].write(getattr(s, name)).result()
        io.write_precomputed_block(labels_pc, z0, s.labels)
        io.write_precomputed_block(image_pc, z0, s.image)
        sizes += np.bincount(s.labels.ravel().astype(np.int64), minlength=n_lab)[:n_lab]
        stats += s.cleft_stats
        sel = inside & (st_vox[:, 0] >= z0) & (st_vox[:, 0] < z1)
        v = st_vox[sel]
        labels_at[sel] = s.labels[v[:, 0] - z0, v[:, 1], v[:, 2]].astype(np.int64)
    tick("truth tables and skeletons", 0.95)
    vol = write_synthetic_truth(out, plan, sizes, stats, labels_at)
    tick("done", 1.0)
    return vol


def write_synthetic_truth(out: Path, plan: synth.Plan, sizes: np.ndarray, stats: np.ndarray,
                          labels_at: np.ndarray) -> dict[str, Any]:
    """The truth tables, skeletons and volume.json of a rendered synthetic volume, from what
    rendering counted: voxels per cell (`sizes`), summed `Slab.cleft_stats`, and the cell
    at each stamp's voxel (`labels_at`, 0 outside); returns volume.json."""
    _write_truth_skeletons(out, synth.truth_skeleton_nodes(plan, labels_at))
    io.write_table(out / "truth" / "segments.parquet",
                   pd.DataFrame(synth.segment_rows(plan, sizes), columns=list(io.SEGMENT_COLUMNS)),
                   io.SEGMENT_COLUMNS)
    io.write_table(out / "truth" / "synapses.parquet",
                   pd.DataFrame(synth.synapse_rows(plan, stats), columns=list(io.SYNAPSE_COLUMNS)),
                   io.SYNAPSE_COLUMNS)
    vol = _synthetic_volume_json(plan.config, plan)
    io.write_json(out / "volume.json", vol)
    return vol
