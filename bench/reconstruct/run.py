"""Benchmark: our seeded segmentation beside waterz and mwatershed on the same affinities.

    uv run python bench/reconstruct/run.py --size 256 --preset clean --seed 0

Synthesises a volume (with truth), predicts affinities once with the shipped affinity
network (trained on other synthetic seeds), then times each segmenter on the same
affinities and scores it (VOI split/merge, NERL) against the truth. Prints a rich table
and writes JSON. Freed memory stays in the process for every method (keep_freed_memory;
`--return-memory` to leave glibc's default).
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from connectome_query.cli.reconstruct import rich_progress
from connectome_query.reconstruct import (
    affinity_net,
    boundary,
    io,
    scoring,
    segment,
    synth,
    synthetic_em,
    training,
)


def keep_freed_memory() -> bool:
    """Have glibc serve every allocation from its heap and keep what is freed there, for
    the rest of this process; False where that cannot be asked (not glibc).

    The sandbox VMs this project runs on (Firecracker, `page_reporting` in `dmesg`) hand
    free memory back to their host a couple of seconds after a process frees it; the
    next array that lands on it pays a fault on the host as well, at random, and a call
    that allocates large arrays (ours, threshold + CC) swings by 2-3x from it while
    waterz, mostly compute, barely moves. Kept in the process, freed memory is reused
    as on an ordinary machine. Every method in the run gets the same allocator.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # mallopt parameters, <malloc.h>
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold,
                                                                   2**31 - 1))


def run_waterz(affs: np.ndarray, threshold: float) -> np.ndarray:
    """waterz: its watershed + mean-affinity agglomeration (one threshold)."""
    import waterz

    out = next(iter(waterz.agglomerate(np.ascontiguousarray(affs, np.float32),
                                       thresholds=[threshold])))
    return np.asarray(out, np.uint64)


def run_mwatershed(affs: np.ndarray) -> np.ndarray:
    """mwatershed on the nearest-neighbour affinities (offsets +1 along z, y, x)."""
    import mwatershed

    shifted = np.zeros(affs.shape, np.float64)
    # our layout links v to v - e_c; mwatershed's offset [1,0,0] links v to v + e_c
    shifted[0, :-1] = affs[0, 1:]
    shifted[1, :, :-1] = affs[1, :, 1:]
    shifted[2, :, :, :-1] = affs[2, :, :, 1:]
    seg = mwatershed.agglom(shifted - 0.5, offsets=[[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    return np.asarray(seg, np.uint64)


def stage_times(affs: np.ndarray, vs: tuple[float, float, float],
                p: segment.SegParams, runs: int) -> dict[str, float]:
    """Seconds per stage of `segment.seeded_segmentation`, the median of `runs` runs."""
    seen: dict[str, list[float]] = {}
    for _ in range(runs):
        out: dict[str, float] = {}
        segment.seeded_segmentation(affs, vs, p, timings=out)
        for k, v in out.items():
            seen.setdefault(k, []).append(v)
    return {k: float(np.median(v)) for k, v in seen.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=256, help="cube edge in voxels")
    ap.add_argument("--preset", default="clean", choices=["clean", "noisy"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=5,
                    help="timing repeats (the best counts); mwatershed runs once")
    ap.add_argument("--out", type=Path, default=Path("bench/reconstruct/results.json"))
    ap.add_argument("--skip", default="", help="comma list of methods to skip")
    ap.add_argument("--workdir", default="", help="keep the volume and affinities here")
    ap.add_argument("--return-memory", action="store_true",
                    help="leave glibc's default of giving large freed arrays back to the "
                         "system (see keep_freed_memory)")
    args = ap.parse_args()
    kept = False if args.return_memory else keep_freed_memory()
    con = Console(width=160)
    n = args.size
    vs = (40.0, 16.0, 16.0)
    cfg = synth.SynthConfig((n, n, n), vs, args.preset, args.seed)
    ap_work = args.workdir
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(ap_work) if ap_work else Path(tmp)
        em = work / f"em_{n}_{args.preset}_{args.seed}"
        t = time.perf_counter()
        if not (em / "volume.json").exists():
            with rich_progress() as tick:
                synthetic_em.write_synthetic_em(em, cfg, tick)
        t_syn = time.perf_counter() - t
        info = io.read_volume_info(em)
        img = io.read_image(em, info)
        truth = io.read_truth(em, img.shape)
        assert truth is not None
        # cached per network weights (a kept volume is reused as it is: use a fresh
        # --workdir after changing the synthesis)
        net_tag = hashlib.sha1(training.DEFAULT_NET.read_bytes()).hexdigest()[:10]
        cache = em / f"predicted_affinities_{net_tag}.npy"
        t = time.perf_counter()
        if cache.exists():
            affs = np.load(cache)
        else:
            affs, _ = affinity_net.predict(io.load_net(training.DEFAULT_NET), img)
            if ap_work:
                np.save(cache, affs)
        t_pred = time.perf_counter() - t
    nvox = float(np.prod(img.shape))
    params = segment.SegParams()
    methods: dict[str, Any] = {
        "ours (seeds, growth, mean-affinity agglomeration; numba kernels)":
            lambda a: segment.seeded_segmentation(a, vs, params),
        "waterz (watershed + mean affinity, t=0.5)":
            lambda a: segment.size_filter(run_waterz(a, 0.5), params.min_size),
        "mwatershed (mutex, 3 offsets)":
            lambda a: segment.size_filter(run_mwatershed(a), params.min_size),
        "threshold + connected components":
            lambda a: segment.threshold_components(a, 0.5, params.min_size),
    }
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    # numba kernels compile on first use (or load from their cache): warm them up on a
    # small crop so that no timing below includes compilation
    t = time.perf_counter()
    crop = np.ascontiguousarray(affs[:, :32, :32, :32])
    segment.seeded_segmentation(crop, vs, params)
    segment.threshold_components(crop, 0.5, params.min_size)
    segment.relabel(segment.size_filter(segment.seeded_segmentation(crop, vs, params), 1),
                    {1: 2})
    t_warm = time.perf_counter() - t
    con.print(f"warm-up (numba compile / cache load, not timed): {t_warm:.1f} s")
    rows = []
    # every method gets the best of --repeats runs, taken in turns (ours, waterz, ...,
    # then again) so that a shared machine's slow spells fall on all of them alike;
    # mwatershed (half a minute) runs once, after the others
    timed = [n for n in methods if n.split()[0] not in skip]
    times: dict[str, list[float]] = {n: [] for n in timed}
    segs: dict[str, Any] = {}

    def run(name: str) -> None:
        a = affs.copy()
        t = time.perf_counter()
        segs[name] = methods[name](a)
        times[name].append(time.perf_counter() - t)

    once = [n for n in timed if n.startswith("mwatershed")]
    for _ in range(args.repeats):
        for name in timed:
            if name not in once:
                run(name)
    for name in once:
        run(name)
    for name in timed:
        sc = scoring.segmentation_scores(segs[name], truth, vs)
        best = min(times[name])
        rows.append({"method": name, "seconds": best, "mvox_per_s": nvox / best / 1e6,
                     "median_seconds": float(np.median(times[name])),
                     **{k: sc[k] for k in ("voi_split", "voi_merge", "voi", "nerl", "arand",
                                           "n_segments")}})
        con.print(f"{name}: {best:.2f} s (median {np.median(times[name]):.2f} s of "
                  f"{len(times[name])})")
    stages = stage_times(affs, vs, params, args.repeats) if "ours" not in skip else {}
    for k, v in stages.items():
        con.print(f"  ours, {k}: {v:.3f} s")
    perfect = scoring.segmentation_scores(
        segment.seeded_segmentation(boundary.true_affinities(truth["segmentation"]), vs,
                                    params), truth, vs)
    tab = Table(title=f"Segmentation at {n}^3 ({args.preset}, seed {args.seed}), "
                      f"same predicted affinities")
    for c in ("method", "s", "Mvox/s", "VOI split", "VOI merge", "VOI", "NERL", "ARAND", "n"):
        tab.add_column(c, justify="right" if c != "method" else "left")
    for r in rows:
        tab.add_row(r["method"], f"{r['seconds']:.2f}", f"{r['mvox_per_s']:.2f}",
                    f"{r['voi_split']:.3f}", f"{r['voi_merge']:.3f}", f"{r['voi']:.3f}",
                    f"{r['nerl']:.3f}", f"{r['arand']:.3f}", str(r["n_segments"]))
    con.print(tab)
    wz = [r for r in rows if r["method"].startswith("waterz")]
    ours = [r for r in rows if r["method"].startswith("ours")]
    summary: dict[str, Any] = {"size": n, "preset": args.preset, "seed": args.seed,
                               "freed_memory_kept": kept,
                               "synth_s": t_syn, "predict_s": t_pred, "warmup_s": t_warm,
                               "ours_stage_s": stages, "rows": rows,
                               "ours_on_true_affinities": perfect}
    if wz and ours:
        ratio = ours[0]["mvox_per_s"] / wz[0]["mvox_per_s"]
        goal = ratio >= 10 and ours[0]["voi"] <= wz[0]["voi"]
        summary["speed_ratio_vs_waterz"] = ratio
        summary["goal_met"] = goal
        con.print(f"ours / waterz speed: {ratio:.1f}x; VOI ours {ours[0]['voi']:.3f} vs "
                  f"waterz {wz[0]['voi']:.3f}; goal (>=10x, VOI no worse) "
                  f"{'MET' if goal else 'NOT met'}")
    con.print("freed memory kept in the process (see keep_freed_memory)" if kept else
              "freed memory given back to the system (glibc's default)")
    con.print(f"synthesis {t_syn:.1f} s, prediction {t_pred:.1f} s, warm-up {t_warm:.1f} s "
              f"(excluded from the timings); ours on true affinities: "
              f"NERL {perfect['nerl']:.3f}, VOI {perfect['voi']:.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
