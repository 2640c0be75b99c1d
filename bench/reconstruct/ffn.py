"""Benchmark: the flood-filling network beside the watershed on the same image, end to end.

    uv run python bench/reconstruct/ffn.py --size 32,96,96 --preset noisy --seed 0 \
        --out bench/reconstruct/ffn_noisy.json

Synthesises a volume with truth (seeds never used in training), runs `connectome reconstruct`
on it with the watershed, then again with `--segmenter ffn` on the first run's affinities (the
same image, the same affinities, the same cleft channel), each in its own process. Reports for
each NERL, VOI split / merge, ARAND, synapse F1 (partners must be right) from the run's
`metrics.json`, and the segmentation stage's seconds and voxels per second (the FFN's stage
against the watershed's passes, faces and relabel). The load average is recorded before and
after: the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from connectome_query.reconstruct import io

WATERSHED_STAGES = ("seeds", "seeds faces", "growth", "growth faces", "fragments", "relabel")
FFN_STAGES = ("segmentation (ffn)",)
KEYS = ("nerl", "voi_split", "voi_merge", "arand", "n_segments", "synapse_f1",
        "synapse_precision", "synapse_recall")


def _row(name: str, run_dir: Path, stages: tuple[str, ...], nvox: int) -> dict[str, Any]:
    metrics = io.read_json(run_dir / "metrics.json", "metrics")["pipeline"]
    timings = io.read_json(run_dir / "run.json", "run")["timings_s"]
    seconds = sum(float(timings.get(s, 0.0)) for s in stages)
    return {"method": name, "segmentation_s": seconds,
            "kvox_per_s": nvox / seconds / 1e3 if seconds > 0 else None,
            "total_s": float(timings["total_s"]), **{k: metrics.get(k) for k in KEYS}}


def _cli(*argv: str) -> None:
    subprocess.run([sys.executable, "-m", "connectome_query.cli", *argv], check=True,
                   stdout=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", default="32,96,96", help="z,y,x voxels")
    ap.add_argument("--preset", default="noisy", choices=["clean", "noisy"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ffn", type=Path, default=None, help="FFN weights (default: shipped)")
    ap.add_argument("--workers", type=int, default=None, help="default: one per core")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    shape = tuple(int(v) for v in args.size.split(","))
    nvox = shape[0] * shape[1] * shape[2]
    con = Console(width=140)
    load_before = os.getloadavg()
    extra = ["--workers", str(args.workers)] if args.workers else []
    with tempfile.TemporaryDirectory() as tmp:
        em = Path(tmp) / "em"
        z, y, x = shape
        _cli("synth-em", str(em), "--size", f"{x},{y},{z}", "--preset", args.preset, "--seed",
             str(args.seed), "--quiet")
        # each run in its own process, as `connectome reconstruct` runs
        t = time.perf_counter()
        ws = Path(tmp) / "watershed"
        _cli("reconstruct", str(em), str(ws), "--quiet", *extra)
        t_ws = time.perf_counter() - t
        t = time.perf_counter()
        ffn = Path(tmp) / "ffn"
        _cli("reconstruct", str(em), str(ffn), "--affinities", str(ws / "affinities.zarr"),
             "--segmenter", "ffn", "--quiet", *extra,
             *(["--ffn", str(args.ffn)] if args.ffn else []))
        t_ffn = time.perf_counter() - t
        rows = [_row("watershed (seeds, growth, mean-affinity agglomeration)", ws,
                     WATERSHED_STAGES, nvox),
                _row("FFN (two seed orders, consensus)", ffn, FFN_STAGES, nvox)]
        ffn_run = io.read_json(ffn / "run.json", "run")
    load_after = os.getloadavg()
    tab = Table(title=f"FFN vs watershed, {args.preset} {'x'.join(map(str, shape))} (z, y, x), "
                      f"seed {args.seed}")
    for c in ("method", "NERL", "VOI split", "VOI merge", "ARAND", "segments", "synapse F1",
              "seg. s", "kvox/s"):
        tab.add_column(c, justify="left" if c == "method" else "right")
    for r in rows:
        tab.add_row(r["method"], f"{r['nerl']:.3f}", f"{r['voi_split']:.3f}",
                    f"{r['voi_merge']:.3f}", f"{r['arand']:.3f}", str(r["n_segments"]),
                    f"{r['synapse_f1']:.3f}", f"{r['segmentation_s']:.1f}",
                    f"{r['kvox_per_s']:.1f}")
    con.print(tab)
    speed = rows[1]["kvox_per_s"] / rows[0]["kvox_per_s"]
    con.print(f"FFN / watershed: speed {speed:.3f}x, NERL {rows[1]['nerl'] - rows[0]['nerl']:+.3f}")
    con.print(f"load average before {load_before}, after {load_after}")
    summary = {"shape_zyx": list(shape), "preset": args.preset, "seed": args.seed,
               "ffn": ffn_run.get("ffn"), "rows": rows, "watershed_run_s": t_ws,
               "ffn_run_s": t_ffn, "nerl_ffn_minus_watershed": rows[1]["nerl"] - rows[0]["nerl"],
               "speed_ffn_over_watershed": speed,
               "load_average_before": load_before, "load_average_after": load_after}
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2, default=float))
        con.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
