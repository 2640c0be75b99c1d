"""Peak memory and time of a whole `pipeline.reconstruct` run, in one piece against slab by
slab (`--block-sections`), on a synthetic volume's true affinities (no network, so the
figure is the pipeline's own: segmentation, clefts, synapses, somata, skeletons).

    uv run python bench/reconstruct/stream_memory.py --shape 128,384,384 \
        --block-sections 128,32 --workdir /tmp/cq/mem

Each block-sections value runs in its own process after a warm-up, with its peak resident
memory reset (Linux `/proc/self/clear_refs`); the EM directory is copied without `truth/`
so that no scoring reads the whole volume. Prints one JSON line per run; the last run's
tables are compared with the first's (synapses equal to 0.1 nm, classes, compartments).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from connectome_query.reconstruct import boundary, io, pipeline, segment, synth, training

VS = (40.0, 16.0, 16.0)


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(work: Path, block_sections: int) -> None:
    """One run in this process; prints a JSON line."""
    small = np.random.default_rng(0).random((3, 16, 32, 32)).astype(np.float32)
    segment.seeded_segmentation(small, VS)  # numba kernels compiled before the reset
    Path("/proc/self/clear_refs").write_text("5")  # Linux: peak RSS := current RSS
    base = _status_mb("VmRSS")
    out = work / f"run{block_sections}"
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    pipeline.reconstruct(work / "em_notruth", out, work / "model.joblib",
                         affinities_path=work / "affs.zarr", block_sections=block_sections)
    seconds = time.perf_counter() - t
    peak = _status_mb("VmHWM")
    run = io.read_json(out / "run.json", "run")
    syn = io.read_table(out / "synapses.parquet", "synapses", io.SYNAPSE_COLUMNS)
    print(json.dumps({"block_sections": block_sections, "seconds": round(seconds, 1),
                      "peak_mb": round(peak), "above_process_mb": round(peak - base),
                      "synapses": len(syn), "timings_s": run["timings_s"],
                      "skeletons": len(list((out / "skeletons").glob("*.swc")))}))


def compare(a: Path, b: Path) -> dict[str, Any]:
    """How far two runs' tables agree."""
    sa = io.read_table(a / "synapses.parquet", "synapses", io.SYNAPSE_COLUMNS)
    sb = io.read_table(b / "synapses.parquet", "synapses", io.SYNAPSE_COLUMNS)
    key = ["pre_segment_id", "post_segment_id", "x", "y", "z", "size_voxels"]
    both = sa[key].round(1).merge(sb[key].round(1), how="inner")
    ga = io.read_table(a / "segments.parquet", "segments", io.SEGMENT_COLUMNS)
    gb = io.read_table(b / "segments.parquet", "segments", io.SEGMENT_COLUMNS)
    cls = ga.merge(gb, on="segment_id")
    return {"synapses": [len(sa), len(sb)], "synapses_identical": len(both),
            "segments": [len(ga), len(gb)],
            "somata": [int(ga["soma_x"].notna().sum()), int(gb["soma_x"].notna().sum())],
            "class_agreement": float((cls["predicted_class_x"] ==
                                      cls["predicted_class_y"]).mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shape", default="128,384,384", help="z,y,x voxels")
    ap.add_argument("--block-sections", default="128,32", help="comma list, one run each")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/cq/mem"))
    ap.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    work = args.workdir
    if args.child:
        child(work, args.child)
        return
    shape = tuple(int(t) for t in args.shape.split(","))
    em = work / "em"
    if not (em / "volume.json").exists():
        io.write_synthetic_em(em, synth.SynthConfig(shape, VS, "clean", 0))  # type: ignore[arg-type]
        truth = io.read_truth(em, shape)
        assert truth is not None
        io.write_zarr(work / "affs.zarr", boundary.true_affinities(truth["segmentation"]))
        io.save_model(work / "model.joblib", training.default_model(VS, seed=0))
        shutil.rmtree(work / "em_notruth", ignore_errors=True)
        shutil.copytree(em, work / "em_notruth", ignore=shutil.ignore_patterns("truth"))
    runs = [int(t) for t in args.block_sections.split(",")]
    for bs in runs:
        done = subprocess.run([sys.executable, __file__, "--workdir", str(work),
                               "--child", str(bs)], capture_output=True, text=True, check=True)
        print(done.stdout.strip().splitlines()[-1], flush=True)
    if len(runs) > 1:
        print(json.dumps(compare(work / f"run{runs[0]}", work / f"run{runs[-1]}")))


if __name__ == "__main__":
    main()
