"""Benchmark: what the affinity network costs a voxel, and what a cheaper one loses, in one run.

    uv run python bench/reconstruct/network_cost.py --shape 48,192,192 --volumes clean:1,noisy:2

For each held-out synthetic volume (seeds far from the training seeds) and each network (the
shipped one, `--baseline`, first with the former 16-pixel halo, then with the halo of the
network's reach; and the lean one distilled from it, `--net`), after a warm-up call that
compiles the tile shape: seconds and kvox/s of the prediction (no flip averaging), then the
segmentation (the watershed, whole volume), the synapses (from the network's cleft channel) and
their scores against the truth: NERL, VOI, synapse F1. Prints the speed ratio (before: shipped
network, former halo; after: lean network) beside the quality change, the largest difference
the halo makes to the shipped network's output (0: none), the 1-minute load average at start
and end, and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from connectome_query.reconstruct import (
    affinity_net,
    distil,
    io,
    scoring,
    segment,
    synapses,
    synth,
    training,
)


def _load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


FORMER_HALO = (4, 16, 16)


def score(net: affinity_net.AffinityNet, img: np.ndarray, truth: dict[str, Any],
          vs: tuple[float, float, float],
          halo: tuple[int, int, int], warm_up: bool) -> tuple[dict[str, Any], np.ndarray]:
    """Prediction speed and segmentation/synapse quality of one network on one volume
    (predicted with `halo`; after an untimed run first if `warm_up`), and the affinities."""
    shipped_halo = affinity_net.HALO
    affinity_net.HALO = halo
    try:
        if warm_up:  # compile this tile shape outside the timing
            affinity_net.predict(net, img)
        load = _load()
        t = time.perf_counter()
        affs, cleft = affinity_net.predict(net, img)
        dt = time.perf_counter() - t
    finally:
        affinity_net.HALO = shipped_halo
    seg = segment.seeded_segmentation(affs, vs)
    seg_scores = scoring.segmentation_scores(seg, truth, vs)
    syn = synapses.detect(cleft, seg, img, vs)
    syn["post_compartment"] = "unknown"
    syn_scores = scoring.synapse_metrics(seg, syn, truth)
    return {"predict_s": dt, "kvox_per_s": img.size / dt / 1e3, "load_1min": load,
            "nerl": seg_scores["nerl"], "voi": seg_scores["voi"],
            "voi_split": seg_scores["voi_split"], "voi_merge": seg_scores["voi_merge"],
            "synapse_f1": syn_scores["synapse_f1"]}, affs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shape", default="48,192,192", help="z,y,x voxels")
    ap.add_argument("--volumes", default="clean:1,noisy:2", help="preset:seed list")
    ap.add_argument("--baseline", type=Path, default=training.DEFAULT_NET)
    ap.add_argument("--net", type=Path, default=training.LEAN_NET)
    ap.add_argument("--out", type=Path, default=Path("bench/reconstruct/network_cost.json"))
    args = ap.parse_args()
    z, y, x = (int(v) for v in args.shape.split(","))
    shape = (z, y, x)
    vs = (40.0, 16.0, 16.0)
    load_start = _load()
    shipped = io.load_net(args.baseline)
    nets = {"shipped, former halo": (shipped, FORMER_HALO),
            "shipped": (shipped, affinity_net.HALO),
            "lean": (io.load_net(args.net), affinity_net.HALO)}
    halo_diff = 0.0
    rows: list[dict[str, Any]] = []
    first = args.volumes.split(",")[0]  # the volumes share a shape: one compile per network
    for item in args.volumes.split(","):
        preset, seed = item.split(":")
        with tempfile.TemporaryDirectory() as tmp:
            em = Path(tmp) / "em"
            io.write_synthetic_em(em, synth.SynthConfig(shape, vs, preset,
                                                      int(seed)))
            img = io.read_image(em, io.read_volume_info(em))
            truth = io.read_truth(em, img.shape)
        assert truth is not None
        outs = {}
        for name, (net, halo) in nets.items():
            widths = net.meta.get(affinity_net.WIDTHS_KEY, affinity_net.WIDTHS)
            scores, outs[name] = score(net, img, truth, vs, halo, item == first)
            r = {"volume": item, "net": name, "widths": list(widths), "halo_zyx": list(halo),
                 "multiply_adds_per_voxel": distil.multiply_adds(widths), **scores}
            rows.append(r)
            print(f"{item} {name} {widths}: {r['kvox_per_s']:.0f} kvox/s, NERL "
                  f"{r['nerl']:.3f}, VOI {r['voi']:.3f}, synapse F1 {r['synapse_f1']:.3f} "
                  f"(load {r['load_1min']:.1f})", flush=True)
        halo_diff = max(halo_diff, float(np.abs(outs["shipped"] - outs["shipped, former halo"])
                                         .max()))
    summary: dict[str, Any] = {}
    for name in nets:
        mine = [r for r in rows if r["net"] == name]
        summary[name] = {k: float(np.mean([r[k] for r in mine]))
                         for k in ("kvox_per_s", "nerl", "voi", "synapse_f1")}
        summary[name]["predict_s"] = float(np.sum([r["predict_s"] for r in mine]))
    before = "shipped, former halo"
    ratio = summary[before]["predict_s"] / summary["lean"]["predict_s"]
    halo_ratio = summary[before]["predict_s"] / summary["shipped"]["predict_s"]
    for k in ("nerl", "voi", "synapse_f1"):
        summary[f"delta_{k}"] = summary["lean"][k] - summary[before][k]
    load_end = _load()
    print(f"speed-up {ratio:.2f}x (prediction seconds summed over volumes; the halo alone "
          f"{halo_ratio:.2f}x, largest output difference {halo_diff:.1e}); mean NERL "
          f"{summary[before]['nerl']:.3f} -> {summary['lean']['nerl']:.3f}, VOI "
          f"{summary[before]['voi']:.3f} -> {summary['lean']['voi']:.3f}, synapse F1 "
          f"{summary[before]['synapse_f1']:.3f} -> {summary['lean']['synapse_f1']:.3f}; "
          f"load {load_start:.1f} at start, {load_end:.1f} at end")
    args.out.write_text(json.dumps({"shape_zyx": list(shape), "rows": rows,
                                    "summary": summary, "speedup": ratio,
                                    "halo_speedup": halo_ratio,
                                    "halo_max_abs_difference": halo_diff,
                                    "load_start": load_start, "load_end": load_end},
                                   indent=2))


if __name__ == "__main__":
    main()
