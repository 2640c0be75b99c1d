"""The joint stack solve in windows beside the whole-stack solve: residual and cost.

    uv run python bench/reconstruct/stack_windows.py --seeds 3,23 --window 6 \
        --cost 48,32 --out bench/reconstruct/stack_windows.json

Residual: each seed's 16×256×256 raw volume through the front end (`align.trial`, as
`tests/reconstruct/align/test_alignment.py`), once with the whole stack solved at once (the
default at this size) and once in windows of `--window` sections (`StackSolveConfig.max_cost`
set so), strict and smooth-over-2-sections RMS / p99 against the truth.

Cost (`--cost SECTIONS,NODES`): a stack of that many sections of NODES×NODES mesh nodes with
random smooth flows to the two sections before each, solved at once and in the windows the
default `MAX_COST` gives; seconds of each in this process, one after the other.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from connectome_query.reconstruct import synth
from connectome_query.reconstruct.align import elastic, flow, stack_solve, trial, warp
from connectome_query.reconstruct.synth import raw

STRIDE = 32


def residual_rows(seed: int, window: int) -> list[dict[str, Any]]:
    image = synth.synthesize(synth.SynthConfig((16, 256, 256), seed=seed)).image
    gy, gx = flow.grid_shape((256, 256), STRIDE)
    nodes = gy * gx  # the mesh's nodes a section
    rows = []
    for name, cost in (("whole stack", stack_solve.MAX_COST),
                       (f"windows of {window}", window * float(nodes) ** 2 + 1.0)):
        align = elastic.AlignConfig(stack=stack_solve.StackSolveConfig(max_cost=cost))
        t = time.perf_counter()
        r = trial.run_trial(image, raw.RawConfig(seed=seed), align)
        rows.append({"seed": seed, "solve": name, "seconds": time.perf_counter() - t,
                     "rms": r.residual.rms, "p99": r.residual.p99,
                     "smooth_rms": r.smooth[2.0].rms, "smooth_p99": r.smooth[2.0].p99,
                     "load_1min": os.getloadavg()[0]})
        print(rows[-1], flush=True)
    return rows


def cost_rows(n: int, g: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    ident = warp.identity_nodes((g, g), STRIDE)
    nodes = ident[None] + rng.normal(0, 2.0, (n, g, g, 2))
    flows = {}
    for z in range(n):
        for r in range(max(z - 2, 0), z):
            yx = np.cumsum(rng.normal(0, 0.3, (g, g, 2)), axis=0)
            flows[(z, r)] = flow.Flow(yx, np.ones((g, g)), STRIDE)
    usable = np.ones(n, bool)
    per = stack_solve.window(n, (g, g))
    rows = []
    for name, w in (("whole stack", None), (f"windows of {per}", per)):
        t = time.perf_counter()
        stack_solve.solve_stack(nodes, flows, usable, STRIDE, 4.0, window=w)
        rows.append({"sections": n, "nodes": f"{g}x{g}", "solve": name,
                     "seconds": time.perf_counter() - t, "load_1min": os.getloadavg()[0]})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", default="3,23")
    ap.add_argument("--window", type=int, default=6)
    ap.add_argument("--cost", default="48,32", help="SECTIONS,NODES; empty to skip")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    out: dict[str, Any] = {"load_before": os.getloadavg(), "residual": [], "cost": []}
    for s in (int(v) for v in args.seeds.split(",") if v):
        out["residual"] += residual_rows(s, args.window)
    if args.cost:
        n, g = (int(v) for v in args.cost.split(","))
        out["cost"] = cost_rows(n, g)
    out["load_after"] = os.getloadavg()
    if args.out:
        args.out.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
