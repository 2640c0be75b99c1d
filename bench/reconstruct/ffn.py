"""Benchmark: the flood-filling network beside the watershed on the same images, end to end.

    uv run python bench/reconstruct/ffn.py --size 256,256,256 --presets clean,noisy --seed 1 \
        --workers 2 --xla-threads 1 --out bench/reconstruct/ffn_256.json
    uv run python bench/reconstruct/ffn.py --size 256,256,256 --presets raw --seed 1 \
        --workers 2 --xla-threads 1 --out bench/reconstruct/ffn_256_raw.json

For each preset, synthesises a volume with truth (seeds never used in training), runs `connectome
reconstruct` on it with the watershed, then again with `--segmenter ffn` on the first run's
affinities (the same image, the same affinities, the same cleft channel), each in its own
process. `raw` synthesises tiles of deformed, damaged sections (`synth-em --preset raw`) and
puts them through the front end (`connectome prepare`) first: both segmenters then see the
prepared image with its defect masks, scored against the truth `prepare` carries into the
aligned frame, as the front-end benches score. Reports for each NERL, VOI split / merge, ARAND,
synapse F1 (partners must be right) from the run's `metrics.json`, and the segmentation stage's
seconds and voxels per second (the FFN's stage against the watershed's passes, faces and
relabel). `--xla-threads 1` runs the FFN process with XLA on one thread (on a loaded machine a
FOV's small convolutions lose more to thread hand-offs than they gain). The load average is
recorded before and after: the machine may be shared.

`--compare z,y,x` adds, in this process on a volume of that size per preset (the same seed), the
FFN's inference through its speed-ups: first every queued FOV predicted, the two seed orders
padded to a stack of two and each object only what is connected to its seed
(`FFNParams(skip_weak=False, connected_to_seed=True)`, `NetPredictor(batch=2)`); then with the
published checks against the move threshold, one FOV a call; then also with the published object
rule (every voxel the fill left above the threshold: the shipped inference). Each row gives FOV
predictions, seconds, kvox/s, NERL and VOI; the ratio of the first row's seconds to the last's
is printed.
`--skip-runs` leaves out the two `connectome reconstruct` runs.
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

import numpy as np
from rich.console import Console
from rich.table import Table

from connectome_query.reconstruct import io
from connectome_query.reconstruct.synth.raw import RawConfig

VS = (40.0, 16.0, 16.0)  # the synthetic volumes' voxel size (z, y, x), nm
INFERENCES = (("every queued FOV, orders padded to 2, object connected to seed", False, 2, True),
              ("published move-threshold checks, 1 FOV a call", True, 1, True),
              ("and the published object rule (shipped)", True, 1, False))

WATERSHED_STAGES = ("seeds", "seeds faces", "growth", "growth faces", "fragments", "relabel")
FFN_STAGES = ("segmentation (ffn)", "ffn faces", "ffn relabel")
KEYS = ("nerl", "voi_split", "voi_merge", "arand", "n_segments", "synapse_f1",
        "synapse_precision", "synapse_recall")
ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def _row(name: str, run_dir: Path, stages: tuple[str, ...], nvox: int) -> dict[str, Any]:
    metrics = io.read_json(run_dir / "metrics.json", "metrics")["pipeline"]
    timings = io.read_json(run_dir / "run.json", "run")["timings_s"]
    seconds = sum(float(timings.get(s, 0.0)) for s in stages)
    return {"method": name, "segmentation_s": seconds,
            "kvox_per_s": nvox / seconds / 1e3 if seconds > 0 else None,
            "total_s": float(timings["total_s"]), **{k: metrics.get(k) for k in KEYS}}


def _cli(*argv: str, env: dict[str, str] | None = None) -> None:
    subprocess.run([sys.executable, "-m", "connectome_query.cli", *argv], check=True,
                   stdout=subprocess.DEVNULL, env=env)


def synth_em(tmp: Path, shape: tuple[int, ...], preset: str, seed: int,
             workers: int | None) -> Path:
    """The EM directory both runs read: `synth-em`'s for clean and noisy; for raw, the raw
    directory `synth-em --preset raw` writes through the front end (`connectome prepare`, which
    carries the truth into the aligned frame, so `reconstruct` scores against it)."""
    z, y, x = shape
    out = tmp / (f"raw_{preset}" if preset == "raw" else f"em_{preset}")
    _cli("synth-em", str(out), "--size", f"{x},{y},{z}", "--preset", preset, "--seed",
         str(seed), "--quiet")
    if preset != "raw":
        return out
    em = tmp / f"em_{preset}"
    _cli("prepare", str(out), str(em), "--quiet",
         *(["--workers", str(workers)] if workers else []))
    return em


def one_preset(tmp: Path, shape: tuple[int, ...], preset: str, seed: int,
               args: argparse.Namespace) -> dict[str, Any]:
    """Watershed and FFN runs on one synthetic volume; their rows and run seconds."""
    extra = ["--workers", str(args.workers)] if args.workers else []
    extra += ["--block", args.block] if args.block else []
    em = synth_em(tmp, shape, preset, seed, args.workers)
    nvox = int(np.prod(io.read_volume_info(em)["shape_zyx"]))  # raw: the aligned frame's
    # each run in its own process, as `connectome reconstruct` runs
    t = time.perf_counter()
    ws = tmp / f"watershed_{preset}"
    _cli("reconstruct", str(em), str(ws), "--quiet", *extra)
    t_ws = time.perf_counter() - t
    env = dict(os.environ)
    if args.xla_threads == 1:
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {ONE_THREAD}".strip()
    t = time.perf_counter()
    ffn = tmp / f"ffn_{preset}"
    _cli("reconstruct", str(em), str(ffn), "--affinities", str(ws / "affinities.zarr"),
         "--segmenter", "ffn", "--quiet", *extra,
         *(["--ffn", str(args.ffn)] if args.ffn else []), env=env)
    t_ffn = time.perf_counter() - t
    rows = [_row("watershed (seeds, growth, mean-affinity agglomeration)", ws,
                 WATERSHED_STAGES, nvox),
            _row("FFN (two seed orders, consensus)", ffn, FFN_STAGES, nvox)]
    return {"preset": preset, "seed": seed, "rows": rows, "watershed_run_s": t_ws,
            "ffn_run_s": t_ffn,
            "ffn": Path(str(io.read_json(ffn / "run.json", "run").get("ffn"))).name,
            "nerl_ffn_minus_watershed": rows[1]["nerl"] - rows[0]["nerl"],
            "speed_ffn_over_watershed": rows[1]["kvox_per_s"] / rows[0]["kvox_per_s"]}


def compare_inference(tmp: Path, shape: tuple[int, ...], preset: str, seed: int,
                      ffn_path: Path | None) -> dict[str, Any]:
    """The FFN's inference before and after its speed-up, in this process, on one synthetic
    volume (prepared image, the shipped affinity network's boundary map): a row each."""
    from connectome_query.reconstruct import (
        affinity_net,
        scoring,
        sections,
        synth,
        synthetic_em,
        training,
    )
    from connectome_query.reconstruct.ffn import inference, model

    em = tmp / f"compare_{preset}"
    z, y, x = shape
    synthetic_em.write_synthetic_em(em, synth.SynthConfig((z, y, x), VS, preset, seed))
    img = io.read_image(em, io.read_volume_info(em))
    truth = io.read_truth(em, img.shape)
    assert truth is not None
    affs, _ = affinity_net.predict(io.load_net(training.DEFAULT_NET), img)
    image, boundary = sections.prepare(img), inference.boundary_of_affinities(affs)
    net = io.load_ffn(ffn_path or training.DEFAULT_FFN)
    rows: list[dict[str, Any]] = []
    for name, skip_weak, batch, connected in INFERENCES:
        pred = model.NetPredictor(net, batch)
        pred((0, 0, 0), image[:net.fov[0], :net.fov[1], :net.fov[2]],
             np.zeros(net.fov, np.float32))  # compiled before the clock starts
        t = time.perf_counter()
        seg, counts = inference.segment(image, boundary, pred, VS,
                                        inference.FFNParams(skip_weak=skip_weak,
                                                            connected_to_seed=connected),
                                        net.fov, net.delta)
        seconds = time.perf_counter() - t
        sc = scoring.segmentation_scores(seg, truth, VS)
        rows.append({"inference": name, "seconds": seconds,
                     "fov_predictions": int(counts["fov_predictions"]),
                     "kvox_per_s": img.size / seconds / 1e3, "load_1min": os.getloadavg()[0],
                     **{k: sc[k] for k in ("nerl", "voi_split", "voi_merge", "arand",
                                           "n_segments")}})
    return {"preset": preset, "seed": seed, "shape_zyx": list(shape), "rows": rows,
            "speedup": rows[0]["seconds"] / rows[-1]["seconds"],
            "fov_ratio": rows[0]["fov_predictions"] / max(rows[-1]["fov_predictions"], 1)}


def show_comparison(con: Console, r: dict[str, Any]) -> None:
    tab = Table(title=f"FFN inference before/after, {r['preset']} "
                      f"{'x'.join(map(str, r['shape_zyx']))} (z, y, x), seed {r['seed']}")
    for c in ("inference", "FOVs", "s", "kvox/s", "NERL", "VOI split", "VOI merge", "segments",
              "load"):
        tab.add_column(c, justify="left" if c == "inference" else "right")
    for row in r["rows"]:
        tab.add_row(row["inference"], str(row["fov_predictions"]), f"{row['seconds']:.1f}",
                    f"{row['kvox_per_s']:.1f}", f"{row['nerl']:.3f}", f"{row['voi_split']:.3f}",
                    f"{row['voi_merge']:.3f}", str(row["n_segments"]),
                    f"{row['load_1min']:.1f}")
    con.print(tab)
    con.print(f"last row / first: {r['speedup']:.2f}x faster, {r['fov_ratio']:.2f}x fewer FOVs")


def show(con: Console, shape: tuple[int, ...], r: dict[str, Any]) -> None:
    tab = Table(title=f"FFN vs watershed, {r['preset']} {'x'.join(map(str, shape))} (z, y, x), "
                      f"seed {r['seed']}")
    for c in ("method", "NERL", "VOI split", "VOI merge", "ARAND", "segments", "synapse F1",
              "seg. s", "kvox/s"):
        tab.add_column(c, justify="left" if c == "method" else "right")
    for row in r["rows"]:
        tab.add_row(row["method"], f"{row['nerl']:.3f}", f"{row['voi_split']:.3f}",
                    f"{row['voi_merge']:.3f}", f"{row['arand']:.3f}", str(row["n_segments"]),
                    f"{row['synapse_f1']:.3f}", f"{row['segmentation_s']:.1f}",
                    f"{row['kvox_per_s']:.1f}")
    con.print(tab)
    con.print(f"FFN / watershed: speed {r['speed_ffn_over_watershed']:.3f}x, "
              f"NERL {r['nerl_ffn_minus_watershed']:+.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", default="32,128,128", help="z,y,x voxels")
    ap.add_argument("--presets", default="clean,noisy",
                    help="comma-separated: clean, noisy, raw (through `connectome prepare`)")
    ap.add_argument("--seed", type=int, default=1, help="synth seed of every preset's volume")
    ap.add_argument("--ffn", type=Path, default=None, help="FFN weights (default: shipped)")
    ap.add_argument("--workers", type=int, default=None, help="default: one per core")
    ap.add_argument("--block", default=None,
                    help="z,y,x block of both runs (the FFN runs block by block with a margin "
                         "of half its FOV); default: the engine's")
    ap.add_argument("--xla-threads", type=int, default=0, choices=[0, 1],
                    help="1: the FFN process's XLA on one thread; 0: XLA's default")
    ap.add_argument("--compare", default=None,
                    help="z,y,x: also the FFN's inference before and after its speed-up, in "
                         "process, on a volume of this size per preset")
    ap.add_argument("--skip-runs", action="store_true",
                    help="only the comparison: no `connectome reconstruct` runs")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    shape = tuple(int(v) for v in args.size.split(","))
    presets = args.presets.split(",")
    compare = tuple(int(v) for v in args.compare.split(",")) if args.compare else None
    if len(shape) != 3 or not set(presets) <= {"clean", "noisy", "raw"}:
        ap.error("--size takes z,y,x and --presets clean, noisy and/or raw")
    if compare is not None and "raw" in presets:
        ap.error("--compare takes synthetic EM directly: clean and/or noisy")
    if "raw" in presets:
        try:  # as `synth-em --preset raw` checks it
            RawConfig().check_section((shape[1], shape[2]))
        except ValueError as e:
            ap.error(f"--presets raw: {e}")
    if compare is not None and len(compare) != 3:
        ap.error("--compare takes z,y,x")
    if args.xla_threads == 1:  # this process's own inference too (before jax is imported)
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {ONE_THREAD}".strip()
    con = Console(width=140)
    summary: dict[str, Any] = {"shape_zyx": list(shape), "block_zyx": args.block,
                               "xla_threads": args.xla_threads or "default", "results": [],
                               "inference_comparison": [],
                               "load_average_before": os.getloadavg()}

    def save() -> None:  # after each preset: a long run killed part-way keeps what it finished
        summary["load_average_after"] = os.getloadavg()
        if args.out:
            args.out.write_text(json.dumps(summary, indent=2, default=float))

    with tempfile.TemporaryDirectory() as tmp:
        if compare is not None:
            for p in presets:
                summary["inference_comparison"].append(
                    compare_inference(Path(tmp), compare, p, args.seed, args.ffn))
                save()
        for p in [] if args.skip_runs else presets:
            summary["results"].append(one_preset(Path(tmp), shape, p, args.seed, args))
            save()
    save()
    for c in summary["inference_comparison"]:
        show_comparison(con, c)
    for r in summary["results"]:
        show(con, shape, r)
    con.print(f"load average before {summary['load_average_before']}, "
              f"after {summary['load_average_after']}")
    if args.out:
        con.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
