"""Benchmark: the plan of `connectome synth-em` (cells, neurite packing, synapses), ours against
the previous packing (kept below as the baseline: it rebuilt the k-d tree of all stamps in every
round where any had drifted, and re-measured its candidate pairs by scanning them all), at
several sizes, each plan in its own process.

    uv run python bench/reconstruct/synth_packing.py --sizes 64,256,256:64,512,512

Reports per size and method the plan's wall and CPU seconds and peak RSS (`getrusage`), and the
statistics the presets are made of: cells, stamps, synapses per cubic micron, neurite radius
quantiles, and stamp pairs of different cells still overlapping by more than 1 nm.
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
from connectome_query.reconstruct.synth.packing import PACK, _adjacency, _sum_at


def relax_previous(pos: np.ndarray, radius: np.ndarray, label: np.ndarray, parent: np.ndarray,
                   movable: np.ndarray, rigid: np.ndarray, rounds: int = 150) -> np.ndarray:
    """The previous packing (the same moves as `packing.relax`):

    Each round moves every overlapping pair apart along the line of centres, the heavier
    stamp (radius cubed) less, averaged over a stamp's overlaps and across the stamp's
    neurite (never along it); the moves are then
    smoothed along each neurite (parent/child stamps) so that a push bends the neurite
    rather than kinking it. `rigid` stamps (somata) are not smoothed with their neurites.
    Stamps not `movable` stay where they are. Deterministic; no randomness.

    A round costs what the stamps still overlapping cost, not the volume: only pairs with a
    stamp that moved are measured again, only stamps within the smoothing's reach of a push
    are moved, and only stamps that drifted are searched for new neighbours (a k-d tree).
    """
    pos = pos.copy()
    w = radius**3
    top = np.sort(radius)[-2:] if len(radius) > 1 else radius
    reach = PACK * float(top.sum())
    child = np.nonzero(parent >= 0)[0]
    par = parent[child]
    deg = np.bincount(child, minlength=len(pos)) + np.bincount(par, minlength=len(pos))
    smooth = movable & ~rigid & (deg > 0)
    has_parent = (parent >= 0) & ~rigid
    adj = _adjacency(child, par, len(pos))
    slack = 60.0  # candidate pairs are found this far beyond reach, and kept while
    # neither stamp has moved half of it since; a stamp that has is searched again
    drift = np.full(len(pos), np.inf)
    moved = np.zeros(len(pos), bool)
    ci = cj = np.zeros(0, np.int64)
    over = np.zeros(0)
    for _ in range(rounds):
        stale = drift > slack / 2
        if stale.any():
            ci, cj = _candidates_previous(pos, radius, label, movable, stale, ci, cj,
                                          reach + slack, slack)
            over = PACK * (radius[ci] + radius[cj]) - np.linalg.norm(pos[cj] - pos[ci], axis=1)
            drift[stale] = 0.0
        else:  # only pairs with a stamp that moved last round can have changed
            k = np.nonzero(moved[ci] | moved[cj])[0]
            over[k] = PACK * (radius[ci[k]] + radius[cj[k]]) - \
                np.linalg.norm(pos[cj[k]] - pos[ci[k]], axis=1)
        sel = over > 1.0
        if not sel.any():
            break
        i, j, ov = ci[sel], cj[sel], over[sel]
        d = pos[j] - pos[i]
        dist = np.linalg.norm(d, axis=1)
        u = d / np.maximum(dist, 1e-6)[:, None]
        wi, wj = w[i], w[j]
        share_i = np.where(movable[i], np.where(movable[j], wj / (wi + wj), 1.0), 0.0)
        share_j = np.where(movable[j], np.where(movable[i], wi / (wi + wj), 1.0), 0.0)
        ij = np.concatenate([i, j])
        push = np.concatenate([-u * (ov * share_i)[:, None], u * (ov * share_j)[:, None]])
        n = np.bincount(ij, np.concatenate([share_i, share_j]) > 0, len(pos))
        move = _sum_at(ij, push, len(pos)) / np.maximum(n, 1)[:, None]
        # the smoothing below spreads a push at most 3 stamps along a neurite
        near = _within_hops_previous(adj, np.unique(ij), 3)
        # a push along a neurite's own axis separates nothing and would tear it apart
        hp = near[has_parent[near]]
        tan = pos[hp] - pos[parent[hp]]
        tan /= np.maximum(np.linalg.norm(tan, axis=1), 1e-6)[:, None]
        move[hp] -= (move[hp] * tan).sum(axis=1)[:, None] * tan
        in_near = np.zeros(len(pos), bool)
        in_near[near] = True
        e = np.nonzero(in_near[child] | in_near[par])[0]
        ec, ep = child[e], par[e]
        ends = np.concatenate([ec, ep])
        sm = near[smooth[near]]
        for _s in range(3):
            nb = _sum_at(ends, np.concatenate([move[ep], move[ec]]), len(pos))[sm] / \
                np.maximum(deg[sm], 1)[:, None]
            move[sm] = 0.5 * move[sm] + 0.5 * nb
        mv = near[movable[near]]
        pos[mv] += move[mv]
        moved[:] = False
        moved[mv] = True
        drift[mv] += np.linalg.norm(move[mv], axis=1)
    return pos


def _candidates_previous(pos: np.ndarray, radius: np.ndarray, label: np.ndarray,
                         movable: np.ndarray,
                stale: np.ndarray, ci: np.ndarray, cj: np.ndarray, reach: float,
                slack: float) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of stamps of different cells, one movable, less than `slack` from touching:
    the pairs `ci, cj` kept where neither stamp is `stale`, the stale stamps searched anew."""
    from scipy.spatial import cKDTree

    tree = cKDTree(pos)
    if stale.mean() > 0.25:
        pairs = tree.query_pairs(reach, output_type="ndarray")
        return _near_pairs_previous(pos, radius, label, movable, pairs[:, 0], pairs[:, 1], slack)
    keep = ~(stale[ci] | stale[cj])
    s = np.nonzero(stale)[0]
    found = tree.query_ball_point(pos[s], reach)
    a = np.repeat(s, np.fromiter((len(f) for f in found), np.int64, len(s)))
    b = np.concatenate([np.asarray(f, np.int64) for f in found])
    one = (a < b) | ~stale[b]  # a pair of two stale stamps is found from both; keep it once
    a, b = _near_pairs_previous(pos, radius, label, movable, np.minimum(a[one], b[one]),
                       np.maximum(a[one], b[one]), slack)
    return np.concatenate([ci[keep], a]), np.concatenate([cj[keep], b])


def _near_pairs_previous(pos: np.ndarray, radius: np.ndarray, label: np.ndarray,
                         movable: np.ndarray,
                ci: np.ndarray, cj: np.ndarray, slack: float) -> tuple[np.ndarray, np.ndarray]:
    """Of the pairs `ci, cj`, those of different cells, one movable, less than `slack`
    from touching."""
    gap = np.linalg.norm(pos[cj] - pos[ci], axis=1) - PACK * (radius[ci] + radius[cj])
    sel = (label[ci] != label[cj]) & (movable[ci] | movable[cj]) & (gap < slack)
    return ci[sel], cj[sel]


def _within_hops_previous(adj: Any, seed: np.ndarray, hops: int) -> np.ndarray:
    out = seed
    for _ in range(hops):
        out = np.union1d(out, adj[out].indices)
    return out


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
        plan.relax = relax_previous
    t, c = time.perf_counter(), time.process_time()
    p = plan.make_plan(plan.SynthConfig((z, y, x)))
    sec, cpu = time.perf_counter() - t, time.process_time() - c
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"size_zyx": size, "method": method, "plan_s": round(sec, 2),
            "plan_cpu_s": round(cpu, 2), "cpu_us_per_voxel": round(1e6 * cpu / (z * y * x), 3),
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
        wall = rows[-1]["plan_s"] / rows[-2]["plan_s"]
        cpu = rows[-1]["plan_cpu_s"] / rows[-2]["plan_cpu_s"]
        print(size, f"baseline/ours wall {wall:.2f}x, cpu {cpu:.2f}x", flush=True)
    load.append(Path("/proc/loadavg").read_text().split()[0])
    print("load (1 min) at start, end:", load)
    Path(a.out).write_text(json.dumps({"load_start_end": load, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
