"""The whole pipeline downstream of the EM front end: the same tissue three ways, one run.

    uv run python bench/reconstruct/front_end_downstream.py --size 256,256,256 \
        --seeds 31 --work WORK --json bench/reconstruct/front_end_downstream_256x256x256.json

For each held-out seed (disjoint from the front end's settings, 3/11/17/23, its tests, 5, and
the networks' training seeds, 2,000,003 on), `connectome synth-em --preset raw` makes a raw
directory, and `connectome reconstruct` runs on

- clean: the undeformed EM directory the raw one was made from (`truth/undeformed`), no
  defects, no deformation, its own truth;
- front end: `connectome prepare RAW EM` (stitch, defects, elastic alignment, fill, contrast;
  it writes the truth in the aligned frame, `align.truth_frame`);
- no front end: the tiles blended at their nominal places (no stitch fit, flat field, defect
  masks, alignment or fill; one global contrast stretch), the truth carried into that frame
  the same way (nominal placements, identity maps).

Each run's metrics.json gives NERL (both normalisations), VOI and synapse F1; the front-end
run is also scored with the voxels outside the imaged tissue (defects.zarr flag 16) left out
of the truth, which measures what masking them costs. Steps already done in `--work` are
reused with their recorded times, also those `front_end_ablation.py` ran in the same folder.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.common import load_1min
from connectome_query.reconstruct import io, scoring
from connectome_query.reconstruct.align import stitch, truth_frame, warp
from connectome_query.reconstruct.align.masks import NO_DECISION, Defect, has
from connectome_query.reconstruct.align.rawdir import read_raw_info, read_section_tiles

KEYS = ("nerl", "nerl_truth_labels", "erl_nm", "erl_truth_nm", "erl_truth_pieces_nm",
        "voi_split", "voi_merge", "synapse_f1", "synapse_precision", "synapse_recall",
        "synapses_true", "n_segments")
MAP_STRIDE = 32


def naive_em(raw_dir: Path, em_dir: Path) -> None:
    """The tiles blended at their nominal places, one global contrast stretch (1st-99th
    percentile), the truth carried into that frame: the volume without any front end."""
    info = read_raw_info(raw_dir)
    lay = info.layout
    nz, (ny, nx) = info.sections, lay.section_shape
    rows, cols = lay.grid
    nominal = lay.nominal_origins()
    one, zero = np.ones((rows, cols)), np.zeros((rows, cols))
    em_dir.mkdir(parents=True, exist_ok=True)
    sections = []
    for z in range(nz):
        tiles, _ = read_section_tiles(info, z)
        img, _ = stitch.blend(tiles.astype(np.float32) / 255.0, np.ones((rows, cols), bool),
                              nominal, zero, one, zero, lay)
        sections.append(img)
    vol = np.stack(sections)
    lo, hi = np.percentile(vol[:, ::4, ::4], [1, 99])
    img8 = np.clip((vol - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)
    io.write_zarr(em_dir / "image.zarr", img8)
    vx, vy, vz = info.voxel_size_nm_xyz
    io.write_json(em_dir / "volume.json", {
        "voxel_size_nm": [vx, vy, vz], "shape_zyx": [nz, ny, nx], "source": "naive montage",
        "created_by": io.CREATED_BY})
    truth_frame.write_truth_in_frame(raw_dir, em_dir, naive_placement(raw_dir))


def naive_placement(raw_dir: Path) -> truth_frame.Placement:
    """Every tile at its nominal place, unturned; the identity map."""
    info = read_raw_info(raw_dir)
    nz, (ny, nx) = info.sections, info.layout.section_shape
    rows, cols = info.layout.grid
    grid = (int(np.ceil((ny - 1) / MAP_STRIDE)) + 1, int(np.ceil((nx - 1) / MAP_STRIDE)) + 1)
    return truth_frame.Placement(
        np.broadcast_to(info.layout.nominal_origins(), (nz, rows, cols, 2)).copy(),
        np.zeros((nz, rows, cols)), np.ones((nz, rows, cols), bool),
        np.broadcast_to(warp.identity_nodes(grid, MAP_STRIDE), (nz, *grid, 2)).copy(),
        MAP_STRIDE)


def _read(path: Path) -> np.ndarray:
    return np.asarray(io.open_zarr(path, str(path)).read().result())


def without_outside(em_dir: Path, run_dir: Path) -> dict[str, float]:
    """The run's scores with the voxels outside the imaged tissue (flag 16) left out of the
    truth: no cell there, no skeleton node there (edges to such nodes go with them)."""
    seg = _read(run_dir / "segmentation.zarr")
    outside = has(_read(em_dir / "defects.zarr"), Defect.NO_TISSUE)
    truth = io.read_truth(em_dir, seg.shape)
    assert truth is not None
    truth["segmentation"][outside] = 0
    vx, vy, vz = io.read_volume_info(em_dir)["voxel_size_nm"]
    sk = truth["skeletons"]
    vox = np.round(sk[["z", "y", "x"]].to_numpy(float) / np.array([vz, vy, vx])).astype(int)
    vox = np.clip(vox, 0, np.array(seg.shape) - 1)
    truth["skeletons"] = sk[~outside[vox[:, 0], vox[:, 1], vox[:, 2]]].reset_index(drop=True)
    s = scoring.segmentation_scores(seg, truth, (vz, vy, vx))
    return {"nerl": s["nerl"], "nerl_truth_labels": s["nerl_truth_labels"],
            "voi_split": s["voi_split"], "voi_merge": s["voi_merge"],
            "outside_fraction": float(outside.mean())}


class Steps:
    """Commands run once in the work folder, their times kept in times.json."""

    def __init__(self, work: Path) -> None:
        self.path = work / "times.json"
        self.times: dict[str, float] = json.loads(self.path.read_text()) \
            if self.path.exists() else {}

    def run(self, name: str, done: Path, fn: Any) -> float:
        if name in self.times and done.exists():
            return self.times[name]
        t = time.perf_counter()
        fn()
        self.times[name] = round(time.perf_counter() - t, 1)
        self.path.write_text(json.dumps(self.times, indent=1))
        return self.times[name]


def _cli(*args: str) -> None:
    subprocess.run(["connectome", *args, "--quiet"], check=True)


def one_seed(work: Path, size: str, seed: int, workers: int,
             prepare_args: list[str]) -> dict[str, Any]:
    raw, em_f, em_n = work / "raw", work / "em_front", work / "em_naive"
    steps = Steps(work)
    out: dict[str, Any] = {"seed": seed, "times_s": {}}
    t = out["times_s"]
    t["synth"] = steps.run("synth", raw / "raw.json", lambda: _cli(
        "synth-em", str(raw), "--size", size, "--preset", "raw", "--seed", str(seed)))
    # step names as `front_end_ablation.py` writes them: one work folder serves both
    t["prepare"] = steps.run("prepare front", em_f / "truth" / "known.zarr", lambda: _cli(
        "prepare", str(raw), str(em_f), *prepare_args))
    t["naive montage"] = steps.run("naive", em_n / "truth" / "known.zarr",
                                   lambda: naive_em(raw, em_n))
    ems = {"clean": raw / "truth" / "undeformed", "front end": em_f, "no front end": em_n}
    for name, em in ems.items():
        run = work / f"run_{name.replace(' ', '_')}"
        step = "reconstruct defects: front end" if name == "front end" else f"reconstruct {name}"
        t[f"reconstruct {name}"] = steps.run(step, run / "metrics.json",
                                             lambda em=em, run=run: _cli(
            "reconstruct", str(em), str(run), "--workers", str(workers)))
        m = json.loads((run / "metrics.json").read_text())["pipeline"]
        out[name] = {k: m[k] for k in KEYS}
    for name, em in (("front end", em_f), ("no front end", em_n)):
        known = _read(em / "truth" / "known.zarr")
        sk = pd.read_parquet(em / "truth" / "skeletons.parquet")
        und = pd.read_parquet(raw / "truth" / "undeformed" / "truth" / "skeletons.parquet")
        out[name]["truth_voxels_known"] = float(known.mean())
        out[name]["truth_nodes_known"] = len(sk) / max(len(und), 1)
    out["front end"]["masked_fraction"] = float(
        has(_read(em_f / "defects.zarr"), NO_DECISION).mean())
    out["front end, outside the tissue left out"] = without_outside(em_f, work / "run_front_end")
    for name in ("front end", "no front end"):
        for k in ("nerl", "nerl_truth_labels"):
            out[name][f"{k}_vs_clean"] = out[name][k] / max(out["clean"][k], 1e-9)
        out[name]["synapse_f1_vs_clean"] = out[name]["synapse_f1"] / max(
            out["clean"]["synapse_f1"], 1e-9)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="128,128,128", help="x,y,z voxels")
    ap.add_argument("--seeds", default="31")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--work", type=Path, required=True, help="folder for the volumes and runs")
    ap.add_argument("--prepare-args", default="", help="extra `connectome prepare` options")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    start = load_1min()
    results = [one_seed(args.work / f"seed{s}", args.size, int(s), args.workers,
                        args.prepare_args.split()) for s in args.seeds.split(",")]
    report = {"size_xyz": args.size, "prepare_args": args.prepare_args, "results": results,
              "load_1min": [start, load_1min()]}
    print(json.dumps(report, indent=1, default=float))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
