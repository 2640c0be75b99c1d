"""Benchmark: the neurite packing of `connectome synth-em`'s plan, ours against the previous
all-stamps relaxation (kept below as the baseline), at two sizes, each in its own process.

    uv run python bench/reconstruct/synth_packing.py --sizes 64,256,256:64,512,512

Reports per size and method the plan's seconds and peak RSS (`getrusage`), and the statistics
the presets are made of: cells, stamps, synapses per cubic micron, neurite radius quantiles, and
stamp pairs of different cells still overlapping by more than 1 nm.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from connectome_query.reconstruct.synth import plan
from connectome_query.reconstruct.synth.packing import PACK, _sum_at


def relax_all_pairs(pos: np.ndarray, radius: np.ndarray, label: np.ndarray, parent: np.ndarray,
          movable: np.ndarray, rigid: np.ndarray, rounds: int = 150) -> np.ndarray:
    """The packing before local candidate search: every round over every candidate pair
    and every stamp, all candidates searched again when any stamp has drifted."""
    from scipy.spatial import cKDTree

    pos = pos.copy()
    w = radius**3
    top = np.sort(radius)[-2:] if len(radius) > 1 else radius
    reach = PACK * float(top.sum())
    child = np.nonzero(parent >= 0)[0]
    par = parent[child]
    deg = np.bincount(child, minlength=len(pos)) + np.bincount(par, minlength=len(pos))
    smooth = movable & ~rigid & (deg > 0)
    has_parent = (parent >= 0) & ~rigid
    slack = 60.0  # candidate pairs are found this far beyond reach, and kept while
    drift = np.inf  # no stamp has moved half of it since
    for _ in range(rounds):
        if drift > slack / 2:
            pairs = cKDTree(pos).query_pairs(reach + slack, output_type="ndarray")
            ci, cj = pairs[:, 0], pairs[:, 1]
            gap = np.linalg.norm(pos[cj] - pos[ci], axis=1) - PACK * (radius[ci] + radius[cj])
            sel = (label[ci] != label[cj]) & (movable[ci] | movable[cj]) & (gap < slack)
            ci, cj = ci[sel], cj[sel]
            drift = 0.0
        d = pos[cj] - pos[ci]
        dist = np.linalg.norm(d, axis=1)
        over = PACK * (radius[ci] + radius[cj]) - dist
        sel = over > 1.0
        if not sel.any():
            break
        i, j, d, dist, over = ci[sel], cj[sel], d[sel], dist[sel], over[sel]
        u = d / np.maximum(dist, 1e-6)[:, None]
        wi, wj = w[i], w[j]
        share_i = np.where(movable[i], np.where(movable[j], wj / (wi + wj), 1.0), 0.0)
        share_j = np.where(movable[j], np.where(movable[i], wi / (wi + wj), 1.0), 0.0)
        ij = np.concatenate([i, j])
        push = np.concatenate([-u * (over * share_i)[:, None], u * (over * share_j)[:, None]])
        n = np.bincount(ij, np.concatenate([share_i, share_j]) > 0, len(pos))
        move = _sum_at(ij, push, len(pos)) / np.maximum(n, 1)[:, None]
        # a push along a neurite's own axis separates nothing and would tear it apart
        tan = np.zeros_like(pos)
        tan[has_parent] = pos[has_parent] - pos[parent[has_parent]]
        tan /= np.maximum(np.linalg.norm(tan, axis=1), 1e-6)[:, None]
        move -= (move * tan).sum(axis=1)[:, None] * tan
        ends = np.concatenate([child, par])
        for _s in range(3):
            nb = _sum_at(ends, np.concatenate([move[par], move[child]]), len(pos)) / \
                np.maximum(deg, 1)[:, None]
            move = np.where(smooth[:, None], 0.5 * move + 0.5 * nb, move)
        pos[movable] += move[movable]
        drift += float(np.abs(move[movable]).max(initial=0.0)) * np.sqrt(3)
    return pos



def stats(p: plan.Plan) -> dict[str, Any]:
    """The statistics a preset is made of, from a plan."""
    st, lab = p.stamps, p.stamp_label
    vol_um3 = float(np.prod(np.array(p.config.shape_zyx) * np.array(p.config.voxel_size_zyx)))
    neurite = p.stamp_comp != 0
    pairs = cKDTree(st[:, :3]).query_pairs(PACK * 2 * 185.0, output_type="ndarray")
    i, j = pairs[:, 0], pairs[:, 1]
    over = PACK * (st[i, 3] + st[j, 3]) - np.linalg.norm(st[i, :3] - st[j, :3], axis=1)
    return {"cells": len(p.soma), "stamps": len(st),
            "synapses_per_um3": len(p.synapses) / (vol_um3 / 1e9),
            "neurite_radius_q10_50_90": np.quantile(st[neurite, 3], [0.1, 0.5, 0.9]).tolist(),
            "overlapping_pairs": int(((lab[i] != lab[j]) & (over > 1.0)).sum())}


def one(size: str, method: str) -> dict[str, Any]:
    z, y, x = (int(t) for t in size.split(","))
    if method == "baseline":
        plan.relax = relax_all_pairs  # type: ignore[assignment]
    t = time.perf_counter()
    p = plan.make_plan(plan.SynthConfig((z, y, x)))
    sec = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"size_zyx": size, "method": method, "plan_s": round(sec, 2),
            "peak_rss_mb": round(peak), **stats(p)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="64,256,256:64,512,512")
    ap.add_argument("--one", nargs=2, metavar=("SIZE", "METHOD"))
    ap.add_argument("--out", default=str(Path(__file__).with_suffix(".json")))
    a = ap.parse_args()
    if a.one:
        print(json.dumps(one(*a.one)))
        return
    load = [Path("/proc/loadavg").read_text().split()[0]]
    rows = []
    for size in a.sizes.split(":"):
        for method in ("ours", "baseline"):
            r = subprocess.run([sys.executable, __file__, "--one", size, method],
                               capture_output=True, text=True, check=True)
            rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
        print(size, "baseline/ours time %.2fx" % (rows[-1]["plan_s"] / rows[-2]["plan_s"]))
    load.append(Path("/proc/loadavg").read_text().split()[0])
    print("load (1 min) at start, end:", load)
    Path(a.out).write_text(json.dumps({"load_start_end": load, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
