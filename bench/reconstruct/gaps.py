"""Segmentation scores of a prepared run before and after joining across wholly masked sections.

    uv run python bench/reconstruct/gaps.py EM_DIR RUN_DIR

EM_DIR: a prepared EM directory (`connectome prepare` of a synthetic raw directory, which
writes the truth in the aligned frame as `truth/`); RUN_DIR: `connectome reconstruct EM_DIR
RUN_DIR`.
"Before" maps the run's fragments through the agglomeration's final ids
(`engine/segment_of_fragment.npy`), "after" is the run's `segmentation.zarr` (the same fragments
with the segments matched across each run of wholly masked sections joined, `segment.gaps`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from connectome_query.reconstruct import io, scoring
from connectome_query.reconstruct.align.masks import NO_DECISION, has
from connectome_query.reconstruct.segment import gaps


def _read(path: Path) -> np.ndarray:
    return np.asarray(io.open_zarr(path, str(path)).read().result())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("em_dir", type=Path)
    ap.add_argument("run_dir", type=Path)
    args = ap.parse_args()
    load = [Path("/proc/loadavg").read_text().split()[0]]
    frags = _read(args.run_dir / "engine" / "fragments.zarr").astype(np.int64)
    truth = io.read_truth_tables(args.em_dir, frags.shape)
    if truth is None:
        raise SystemExit(f"{args.em_dir}: no truth/ directory")
    truth["segmentation"] = _read(args.em_dir / "truth" / "segmentation.zarr")
    vx, vy, vz = io.read_volume_info(args.em_dir)["voxel_size_nm"]
    bad = has(_read(args.em_dir / "defects.zarr"), NO_DECISION)
    segs = {"before": np.load(args.run_dir / "engine" / "segment_of_fragment.npy")[frags],
            "after": _read(args.run_dir / "segmentation.zarr")}
    out: dict[str, object] = {
        "wholly_masked_runs": gaps.masked_runs(bad.reshape(len(bad), -1).all(axis=1)),
        "masked_fraction": round(float(bad.mean()), 3)}
    for name, seg in segs.items():
        s = scoring.segmentation_scores(seg, truth, (vz, vy, vx))
        out[name] = {k: round(float(s[k]), 4) for k in ("nerl", "voi_split", "voi_merge",
                                                          "n_segments")}
    load.append(Path("/proc/loadavg").read_text().split()[0])
    out["load_1min"] = load
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
