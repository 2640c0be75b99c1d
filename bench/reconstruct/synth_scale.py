"""Benchmark: `connectome synth-em` end to end as the volume grows, on the engine (a LocalCluster
of worker processes, one thread each) against the one-process writer
(`synthetic_em.write_synthetic_em`, slab by slab: the baseline), each run in its own process.

    uv run python bench/reconstruct/synth_scale.py --sizes 32,256,256:64,256,256:64,512,512 \
        --block 32,256,256 --workers 2 --workdir DIR

Reports per run the seconds (wall, and the plan's share), CPU seconds (driver and workers, less
what the workers had used before the run), microseconds per voxel of both, and the peak
RSS of the driver and of each worker (`getrusage`, asked of the workers before the cluster
closes): with blocks of a fixed shape a worker's peak should not grow with the volume.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class _Clock:
    """A `Progress` that notes when the plan is done."""

    def __init__(self) -> None:
        self.plan_done = 0.0

    def stage(self, name: str, total: int, done: int = 0) -> None:
        return None

    def advance(self, name: str, n: int = 1) -> None:
        if name.startswith("plan"):
            self.plan_done = time.perf_counter()

    def note(self, text: str) -> None:
        return None


def one(size: str, method: str, out: Path, block: str, workers: int) -> dict[str, Any]:
    from distributed import Client, LocalCluster

    from connectome_query.reconstruct import synth, synthetic_em
    from connectome_query.reconstruct.engine.cluster import ClusterSpec, worker_env
    from connectome_query.reconstruct.engine.synth import write_synthetic

    z, y, x = (int(v) for v in size.split(","))
    cfg = synth.SynthConfig((z, y, x))
    shutil.rmtree(out, ignore_errors=True)
    row: dict[str, Any] = {"size_zyx": size, "method": method, "voxels": z * y * x}
    if method == "baseline":
        t, c = time.perf_counter(), _cpu_s()
        synthetic_em.write_synthetic_em(out, cfg)
        sec = time.perf_counter() - t
        row.update(seconds=round(sec, 1), cpu_seconds=round(_cpu_s() - c, 1),
                   driver_peak_mb=round(_peak_mb()), worker_peak_mb=[])
    else:
        bz, by, bx = (int(v) for v in block.split(","))
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=40, env=worker_env(1))
        client = Client(cluster)
        try:
            clock = _Clock()
            idle = sum(client.run(_cpu_s).values())
            t, c = time.perf_counter(), _cpu_s()
            write_synthetic(out, cfg, ClusterSpec(scheduler=cluster.scheduler_address),
                            (bz, by, bx), clock)
            sec = time.perf_counter() - t
            cpu = _cpu_s() - c + sum(client.run(_cpu_s).values()) - idle
            peaks = client.run(_peak_mb)
        finally:
            client.close()
            cluster.close(timeout=60)
        row.update(seconds=round(sec, 1), cpu_seconds=round(cpu, 1),
                   plan_seconds=round(clock.plan_done - t, 1),
                   block=block, driver_peak_mb=round(_peak_mb()),
                   worker_peak_mb=sorted(round(v) for v in peaks.values()))
    row["us_per_voxel"] = round(1e6 * row["seconds"] / row["voxels"], 2)
    row["cpu_us_per_voxel"] = round(1e6 * row["cpu_seconds"] / row["voxels"], 2)
    shutil.rmtree(out, ignore_errors=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="32,256,256:64,256,256:64,512,512")
    ap.add_argument("--block", default="32,256,256")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--baseline-sizes", default=None,
                    help="sizes to run the baseline at (default: all)")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--one", nargs=2, metavar=("SIZE", "METHOD"))
    ap.add_argument("--out", default=str(Path(__file__).with_suffix(".json")))
    a = ap.parse_args()
    work = Path(a.workdir)
    if a.one:
        print(json.dumps(one(a.one[0], a.one[1], work / "em", a.block, a.workers)))
        return
    base = (a.baseline_sizes or a.sizes).split(":")
    load = [Path("/proc/loadavg").read_text().split()[0]]
    rows = []
    for size in a.sizes.split(":"):
        for method in ("ours", "baseline") if size in base else ("ours",):
            r = subprocess.run([sys.executable, __file__, "--one", size, method, "--workdir",
                                str(work), "--block", a.block, "--workers", str(a.workers)],
                               capture_output=True, text=True, check=True)
            rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    load.append(Path("/proc/loadavg").read_text().split()[0])
    print("load (1 min) at start, end:", load)
    Path(a.out).write_text(json.dumps({"load_start_end": load, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
