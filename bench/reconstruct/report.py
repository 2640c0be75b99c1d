"""`connectome report RUN_DIR` time and peak memory on a run, against the report as it read
the volumes before (the baseline, same run): segmentation, truth and image read whole, the
sections cut from them, ERL per cell and the split / merge tables computed on them in memory.
Ours reads them a block at a time (`reconstruct/report/volumes.py`). Each variant runs in its
own process (peak RSS from `getrusage`); prints medians, the ratios and the load average;
writes JSON.

    uv run connectome synth-em EM --size 256,256,256
    uv run connectome reconstruct EM RUN            # writes RUN/report.html too
    uv run python bench/reconstruct/report.py RUN [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np
import pandas as pd

from bench.common import ratio
from connectome_query.reconstruct import io
from connectome_query.reconstruct.report import build, errors, volumes


def whole_volume_data(run_dir: Path) -> dict[str, Any]:
    """The baseline: what `build.report_data` gives, from every volume read whole."""
    run = io.read_json(run_dir / "run.json", "run")
    vx, vy, vz = (float(v) for v in run["voxel_size_nm"])
    seg_path = run_dir / "segmentation.zarr"
    seg = io.read_block(io.open_zarr(seg_path), (slice(None),) * 3, seg_path)
    metrics = run_dir / "metrics.json"
    d: dict[str, Any] = {
        "run": run, "vs_zyx": (vz, vy, vx), "shape": seg.shape,
        "segments": pd.read_parquet(run_dir / "segments.parquet"),
        "synapses": pd.read_parquet(run_dir / "synapses.parquet"),
        "metrics": json.loads(metrics.read_text()) if metrics.is_file() else None,
        "skeletons": build.skeleton_lengths(run_dir), "sections": None, "truth": None}
    em = Path(str(run.get("source", "")))
    if not (em / "volume.json").is_file():
        return d
    whole = {"image": io.read_image(em, io.read_volume_info(em)), "segmentation": seg}
    truth = io.read_truth(em, seg.shape)
    if truth is not None:
        whole["truth"] = truth["segmentation"]
        d["truth"] = truth
        d["erl"] = errors.erl_per_cell(truth, seg, d["vs_zyx"])
        d["splits"], d["merges"] = errors.split_merge_errors(truth["segmentation"], seg,
                                                             d["vs_zyx"])
    d["sections"] = {k: {p: np.take(v, v.shape[a] // 2, axis=a)
                         for p, a in volumes.PLANES.items()} for k, v in whole.items()}
    return d


def child(variant: str, run_dir: Path) -> None:
    """One report in this process; prints seconds and peak MB as JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.html"
        t = time.perf_counter()
        if variant == "ours":
            build.write_report(run_dir, out)
        else:
            out.write_text(build.render(whole_volume_data(run_dir), "baseline"))
        seconds = time.perf_counter() - t
        kb = out.stat().st_size / 1024
    print(json.dumps({"s": seconds, "peak_mb": resource.getrusage(
        resource.RUSAGE_SELF).ru_maxrss / 1024, "kb": kb}))


def run(variant: str, run_dir: Path) -> dict[str, float]:
    done = subprocess.run([sys.executable, __file__, str(run_dir), "--child", variant],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{variant} failed:\n{done.stderr[-3000:]}")
    out: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", type=Path, default=Path("bench/reconstruct/report.json"))
    p.add_argument("--child", default=None)
    a = p.parse_args()
    if a.child:
        child(a.child, a.run_dir)
        return
    load_start = os.getloadavg()[0]
    rows = {v: [run(v, a.run_dir) for _ in range(a.repeats)] for v in ("ours", "whole")}
    load_end = os.getloadavg()[0]
    shape = json.loads((a.run_dir / "run.json").read_text()).get("shape_zyx")
    med = {v: {k: float(np.median([r[k] for r in rs])) for k in ("s", "peak_mb", "kb")}
           for v, rs in rows.items()}
    res = {"run_dir": a.run_dir.name, "shape_zyx": shape, "runs": rows, "median": med,
           "load_avg_1m_start": load_start, "load_avg_1m_end": load_end}
    o, w = med["ours"], med["whole"]
    print(f"report of a {shape} run ({o['kb']:,.0f} KB): {o['s']:.2f} s, peak "
          f"{o['peak_mb']:,.0f} MB; volumes read whole {w['s']:.2f} s, {w['peak_mb']:,.0f} MB; "
          f"ratios {ratio(o['s'], w['s'])} (time), {ratio(o['peak_mb'], w['peak_mb'])} "
          f"(memory); load average (1 min) {load_start:.1f} at start, {load_end:.1f} at end")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
