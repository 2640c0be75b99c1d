"""`connectome report RUN_DIR` time on a run (256³ is the issue's size), against the report as
it was drawn before (the baseline, same run): one full-volume mask per split or merge piece for
its centroid, and a bar per true cell in the ERL picture. Also the time to read the run's
tables and volumes alone. Prints medians, the ratio and the load average; writes JSON.

    uv run connectome synth-em EM --size 256,256,256
    uv run connectome reconstruct EM RUN            # writes RUN/report.html too
    uv run python bench/reconstruct/report.py RUN [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np
import pandas as pd

from bench.common import ratio
from connectome_query.reconstruct.report import build, errors


def centroids_per_piece(gt: np.ndarray, seg: np.ndarray, pairs: pd.DataFrame,
                        vs_zyx: tuple[float, float, float]) -> list[list[float]]:
    """The baseline: one mask over the whole volume per (cell, segment) piece."""
    out = []
    for cell, segment in zip(pairs["cell"], pairs["segment"], strict=True):
        z, y, x = np.nonzero((gt == cell) & (seg == segment))
        out.append([float(x.mean() * vs_zyx[2]), float(y.mean() * vs_zyx[1]),
                    float(z.mean() * vs_zyx[0])])
    return out


@contextmanager
def drawn_before() -> Iterator[None]:
    saved = errors.centroids_nm, build.ERL_BARS
    errors.centroids_nm = centroids_per_piece
    build.ERL_BARS = 10**9
    try:
        yield
    finally:
        errors.centroids_nm, build.ERL_BARS = saved


def timed(fn: Callable[[], Any], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", type=Path, default=Path("bench/reconstruct/report.json"))
    a = p.parse_args()
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.html"
        ours = timed(lambda: build.write_report(a.run_dir, out), a.repeats)
        size_kb = out.stat().st_size / 1024
        with drawn_before():
            before = timed(lambda: build.write_report(a.run_dir, out), a.repeats)
    read = timed(lambda: build.report_data(a.run_dir), a.repeats)
    load_end = os.getloadavg()[0]
    shape = json.loads((a.run_dir / "run.json").read_text()).get("shape_zyx")
    res = {"run_dir": a.run_dir.name, "shape_zyx": shape, "report_s": ours,
           "drawn_before_s": before, "read_only_s": read, "report_kb": size_kb,
           "load_avg_1m_start": load_start, "load_avg_1m_end": load_end}
    o, b, r = (float(np.median(v)) for v in (ours, before, read))
    print(f"report of a {shape} run ({size_kb:,.0f} KB): {o:.2f} s; as drawn before "
          f"{b:.2f} s, ratio {ratio(o, b)}; reading its data alone {r:.2f} s; load average "
          f"(1 min) {load_start:.1f} at start, {load_end:.1f} at end")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
