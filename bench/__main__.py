"""`make bench` (`uv run python -m bench`): every benchmark script that exists, one after another.

    uv run python -m bench                 # all, at their default (FlyWire-like) scale
    uv run python -m bench --only ingest,partners
    uv run python -m bench --quick         # small sizes: a smoke run in minutes

Each script measures our path and its baseline in the same run and prints the ratios; results go
to the JSON files the scripts name and the figures into BENCHMARKS.md by hand (with the command).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPTS: dict[str, tuple[str, list[str]]] = {
    # name: (script, extra arguments for --quick)
    "ingest": ("bench/ingest/run.py", ["--neurons", "5000", "--edges", "50000", "--synapses",
                                       "500000", "--tune-neurons", "2000", "--tune-edges",
                                       "20000", "--heap", "1g", "--pagecache", "512m",
                                       "--json", "bench/ingest/results-quick.json"]),
    "pages": ("bench/pages/run.py", ["--neurons", "5000", "--edges", "50000", "--heap", "1g",
                                     "--pagecache", "512m",
                                     "--json", "bench/pages/results-quick.json"]),
    "partners": ("bench/partners/run.py", ["--neurons", "5000", "--edges", "50000",
                                           "--requests", "100", "--heap", "1g",
                                           "--pagecache", "512m",
                                           "--json", "bench/partners/results-quick.json"]),
    "queries": ("bench/queries/run.py", ["--neurons", "2000", "--edges", "20000",
                                         "--synapses", "100000"]),
    "export": ("bench/export/run.py", ["--neurons", "20000", "--edges", "300000"]),
    "reconstruct": ("bench/reconstruct/run.py", ["--size", "96"]),
    "sources": ("bench/sources/run.py", ["--neurons", "5000", "--rows", "100000",
                                         "--json", "bench/sources/results-quick.json"]),
    "align": ("bench/reconstruct/align.py", ["--size", "384", "--truth-size", "0",
                                             "--json", "bench/reconstruct/align-quick.json"]),
    "load": ("bench/load/run.py", ["--seconds", "15", "--baseline-seconds", "5"]),
    "neuprint": ("bench/neuprint/run.py", ["--reps", "5",
                                           "--json", "bench/neuprint/results-quick.json"]),
    "neuprint-sides": ("bench/neuprint/synapse_sides.py", [
        "--synapses", "50000", "--json", "bench/neuprint/sides-quick.json"]),
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default="", help=f"comma list of: {', '.join(SCRIPTS)}")
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    a = p.parse_args()
    wanted = [w for w in a.only.split(",") if w] or list(SCRIPTS)
    unknown = set(wanted) - set(SCRIPTS)
    if unknown:
        p.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    failed: list[str] = []
    for name in wanted:
        script, quick = SCRIPTS[name]
        if not (ROOT / script).exists():
            print(f"== {name}: {script} not present, skipped", flush=True)
            continue
        cmd = [sys.executable, script, *(quick if a.quick else [])]
        print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
        t = time.perf_counter()
        rc = subprocess.run(cmd, cwd=ROOT, check=False).returncode
        print(f"== {name}: exit {rc} after {time.perf_counter() - t:.0f} s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
