"""Benchmark: `connectome reconstruct` end to end (network included) on the engine, against one
process holding the whole volume as one block.

    uv run python bench/reconstruct/scale.py --shape 32,256,256 --block 32,128,128 \
        --workdir DIR --out bench/reconstruct/scale.json

Synthesises a clean volume of `--shape` (z, y, x) and one of 8x its voxels (twice each side),
then runs, each in its own process:

- `one process`: the whole volume as one block on an in-process cluster of one thread (the
  one-process answer the engine must match; the baseline);
- `1 worker`, `2 workers`: the engine at `--block` on a LocalCluster of 1 and 2 worker
  processes (one thread each, `--worker-memory` each);
- `2 workers, 8x`: the 8x volume at the same block shape, to show that a worker's peak memory
  depends on the block, not on the volume (`--baseline-8x` also runs the one-process
  baseline on it).

Each run reports seconds, voxels per second (network included, scoring against the truth
included), the driver's peak RSS (`getrusage`: through the pipeline, then with the run's
report written as `connectome reconstruct` writes it), each worker's peak RSS (`getrusage` in
the worker process; a worker restarted by its nanny starts again from zero), and whether its
segmentation and synapse table equal the one-process run's. The driver's and the workers'
peaks at 8x over 1x say what grows with the volume. The load average is recorded before and
after.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

KEY = ["synapse_id", "pre_segment_id", "post_segment_id", "x", "y", "z", "size_voxels",
       "confidence"]


def _triple(text: str) -> tuple[int, int, int]:
    z, y, x = (int(t) for t in text.split(","))
    return z, y, x


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _worker_ready() -> float:
    """On a worker: import what the tasks import; its RSS afterwards (MB)."""
    import psutil

    from connectome_query.reconstruct import affinity_net, pipeline, segment  # noqa: F401

    return float(psutil.Process().memory_info().rss / 2**20)


def child(mode: str, em: Path, out: Path, block: tuple[int, int, int], workers: int,
          worker_memory: str) -> None:
    """One run in this process; prints a JSON line."""
    from connectome_query.reconstruct import io, pipeline
    from connectome_query.reconstruct.engine.cluster import ClusterSpec, worker_env

    shape: tuple[int, int, int] = tuple(io.read_volume_info(em)["shape_zyx"])  # type: ignore
    if mode == "one":
        t = time.perf_counter()
        res = pipeline.reconstruct(em, out, block=shape,
                                   spec=ClusterSpec(workers=1, threads=1, processes=False))
        seconds = time.perf_counter() - t
        workers_mb: list[float] = []
        ready_mb: list[float] = []
    else:
        from distributed import Client, LocalCluster

        lc = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          memory_limit=worker_memory, dashboard_address=":0",
                          silence_logs=40, env=worker_env(1))
        client = Client(lc)
        ready_mb = sorted(client.run(_worker_ready).values())
        t = time.perf_counter()
        res = pipeline.reconstruct(em, out, block=block,
                                   spec=ClusterSpec(scheduler=lc.scheduler_address))
        seconds = time.perf_counter() - t
        workers_mb = sorted(client.run(_peak_mb).values())
        client.close()
        with contextlib.suppress(TimeoutError):  # a busy machine's slow worker exits
            lc.close(timeout=60)
    pipeline_mb = _peak_mb()
    from connectome_query.reconstruct.report import build

    t = time.perf_counter()
    build.write_report(out)
    report_s = time.perf_counter() - t
    n = int(np.prod(shape))
    timings = io.read_json(out / "run.json", "run")["timings_s"]
    print(json.dumps({"mode": mode, "shape_zyx": list(shape), "voxels": n,
                      "block_zyx": list(shape if mode == "one" else block),
                      "workers": workers, "seconds": round(seconds, 1),
                      "kvox_per_s": round(n / seconds / 1e3, 1),
                      "driver_peak_mb": round(_peak_mb()),
                      "driver_pipeline_peak_mb": round(pipeline_mb),
                      "report_s": round(report_s, 1),
                      "worker_ready_mb": [round(m) for m in ready_mb],
                      "worker_peak_mb": [round(m) for m in workers_mb],
                      "network_s": round(timings.get("affinities (network)", 0.0), 1),
                      "nerl": res["pipeline"]["nerl"], "voi": res["pipeline"]["voi"],
                      "synapse_f1": res["pipeline"]["synapse_f1"]}), flush=True)


def _same(a: Path, b: Path) -> dict[str, bool]:
    import pandas as pd

    from connectome_query.reconstruct import io

    def seg(d: Path) -> np.ndarray:
        st = io.open_zarr(d / "segmentation.zarr")
        return io.read_block(st, (slice(None),) * 3, d)

    sa, sb = (pd.read_parquet(d / "synapses.parquet")[KEY] for d in (a, b))
    return {"same_segmentation": bool(np.array_equal(seg(a), seg(b))),
            "same_synapses": bool(sa.equals(sb))}


def _run(mode: str, em: Path, out: Path, block: tuple[int, int, int], workers: int,
         memory: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", mode, "--em", str(em), "--run", str(out),
           "--block", ",".join(map(str, block)), "--workers", str(workers),
           "--worker-memory", memory]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=3600)
    except subprocess.TimeoutExpired as e:
        sys.exit(f"{mode} run took over an hour:\n{(e.stderr or b'')[-3000:]!r}")
    if done.returncode != 0:
        sys.exit(f"{mode} run failed:\n{done.stderr[-3000:]}")
    row: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(row), flush=True)
    return row


def _load() -> str:
    return Path("/proc/loadavg").read_text().strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", default="32,256,256", help="z,y,x of the 1x volume")
    ap.add_argument("--block", default="32,128,128", help="z,y,x block of the engine runs")
    ap.add_argument("--worker-memory", default="4GB")
    ap.add_argument("--workdir", type=Path, default=None, help="where volumes and runs go")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--baseline-8x", action="store_true")
    ap.add_argument("--child", default=None)
    ap.add_argument("--em", type=Path)
    ap.add_argument("--run", type=Path)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    block = _triple(args.block)
    if args.child:
        child(args.child, args.em, args.run, block, args.workers, args.worker_memory)
        return
    from connectome_query.reconstruct import synth, synthetic_em

    if args.workdir is None:
        ap.error("--workdir is required")
    shape = _triple(args.shape)
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    load_before = _load()
    ems = {}
    for name, sh in (("1x", shape), ("8x", tuple(2 * s for s in shape))):
        ems[name] = work / f"em_{'_'.join(map(str, sh))}_{args.seed}"
        if not (ems[name] / "volume.json").exists():
            t = time.perf_counter()
            synthetic_em.write_synthetic_em(
                ems[name], synth.SynthConfig(sh, preset="clean",  # type: ignore
                                             seed=args.seed))
            print(f"synthesised {sh} in {time.perf_counter() - t:.1f} s", flush=True)
    stamp = time.strftime("%H%M%S")
    rows = []
    runs = [("one", "1x", 1), ("engine", "1x", 1), ("engine", "1x", 2), ("engine", "8x", 2)]
    if args.baseline_8x:
        runs.append(("one", "8x", 1))
    dirs: dict[tuple[str, str, int], Path] = {}
    for mode, vol, n in runs:
        out = work / f"run_{stamp}_{mode}_{vol}_{n}"
        dirs[(mode, vol, n)] = out
        row = _run(mode, ems[vol], out, block, n, args.worker_memory)
        row["volume"] = vol
        if mode == "engine" and ("one", vol, 1) in dirs:
            row.update(_same(out, dirs[("one", vol, 1)]))
        rows.append(row)
    one = next(r for r in rows if r["mode"] == "one")
    for r in rows:
        if r["volume"] == "1x":
            r["speed_vs_one_process"] = round(r["kvox_per_s"] / one["kvox_per_s"], 2)
    e8 = rows[3]
    e1 = rows[2]
    summary = {"load_before": load_before, "load_after": _load(),
               "cores": __import__("os").cpu_count(), "worker_memory": args.worker_memory,
               "command": " ".join(sys.argv).replace(str(work), "DIR"), "runs": rows,
               "worker_peak_8x_over_1x": round(max(e8["worker_peak_mb"])
                                               / max(e1["worker_peak_mb"]), 2),
               "driver_peak_8x_over_1x": round(e8["driver_peak_mb"] / e1["driver_peak_mb"], 2)}
    print(json.dumps(summary, indent=1))
    if args.out:
        args.out.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
