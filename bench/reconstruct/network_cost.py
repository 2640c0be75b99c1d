"""Benchmark: what the affinity network costs a voxel, and what a cheaper one loses, in one run.

    uv run python bench/reconstruct/network_cost.py --shape 48,192,192 --volumes clean:1,noisy:2

For each held-out synthetic volume (seeds far from the training seeds) and each network (`--nets`:
the shipped one, the lean one distilled from it, the coarse one at in-plane stride 2), after a
warm-up call that compiles the tile shape: seconds and kvox/s of the prediction (no flip
averaging, tiles of at most `--tile`), then the segmentation (the watershed, whole volume), the
synapses (from the network's cleft channel) and their scores against the truth: NERL, VOI,
synapse F1. Prints each network's speed ratio to the shipped one (prediction seconds summed over
the volumes) beside its quality change, the 1-minute load average at start and end, and writes
JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import load_1min
from connectome_query.reconstruct import (
    affinity_net,
    distil,
    io,
    scoring,
    segment,
    synapses,
    synth,
    synthetic_em,
    training,
)


def score(net: affinity_net.AffinityNet, img: np.ndarray, truth: dict[str, Any],
          vs: tuple[float, float, float], tile: tuple[int, int, int],
          warm_up: bool) -> dict[str, Any]:
    """Prediction speed and segmentation/synapse quality of one network on one volume
    (after an untimed run first if `warm_up`)."""
    if warm_up:  # compile this tile shape outside the timing
        affinity_net.predict(net, img, tile=tile)
    load = load_1min()
    t = time.perf_counter()
    affs, cleft = affinity_net.predict(net, img, tile=tile)
    dt = time.perf_counter() - t
    seg = segment.seeded_segmentation(affs, vs)
    seg_scores = scoring.segmentation_scores(seg, truth, vs)
    syn = synapses.detect(cleft, seg, img, vs)
    syn["post_compartment"] = "unknown"
    syn_scores = scoring.synapse_metrics(seg, syn, truth)
    return {"predict_s": dt, "kvox_per_s": img.size / dt / 1e3, "load_1min": load,
            "nerl": seg_scores["nerl"], "voi": seg_scores["voi"],
            "voi_split": seg_scores["voi_split"], "voi_merge": seg_scores["voi_merge"],
            "synapse_f1": syn_scores["synapse_f1"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shape", default="48,192,192", help="z,y,x voxels")
    ap.add_argument("--volumes", default="clean:1,noisy:2", help="preset:seed list")
    ap.add_argument("--nets", default="full,lean,coarse",
                    help="shipped networks by name (the first is the baseline) or weight files")
    ap.add_argument("--tile", default="64,256,256", help="largest tile core z,y,x")
    ap.add_argument("--out", type=Path, default=Path("bench/reconstruct/network_cost.json"))
    args = ap.parse_args()
    z, y, x = (int(v) for v in args.shape.split(","))
    shape = (z, y, x)
    tz, ty, tx = (int(v) for v in args.tile.split(","))
    vs = (40.0, 16.0, 16.0)
    load_start = load_1min()
    nets = {name: io.load_net(training.net_file(name) or training.DEFAULT_NET)
            for name in args.nets.split(",")}
    rows: list[dict[str, Any]] = []
    first = args.volumes.split(",")[0]  # the volumes share a shape: one compile per network
    for item in args.volumes.split(","):
        preset, seed = item.split(":")
        with tempfile.TemporaryDirectory() as tmp:
            em = Path(tmp) / "em"
            synthetic_em.write_synthetic_em(em, synth.SynthConfig(shape, vs, preset, int(seed)))
            img = io.read_image(em, io.read_volume_info(em))
            truth = io.read_truth(em, img.shape)
        assert truth is not None
        for name, net in nets.items():
            widths = net.meta.get(affinity_net.WIDTHS_KEY, affinity_net.WIDTHS)
            stride = affinity_net.net_stride(net)
            scores = score(net, img, truth, vs, (tz, ty, tx), item == first)
            r = {"volume": item, "net": name, "widths": list(widths), "stride": stride,
                 "halo_zyx": list(affinity_net.halo(stride)),
                 "multiply_adds_per_voxel": distil.multiply_adds(widths, stride), **scores}
            rows.append(r)
            print(f"{item} {name} {widths}/{stride}: {r['kvox_per_s']:.0f} kvox/s, NERL "
                  f"{r['nerl']:.3f}, VOI {r['voi']:.3f}, synapse F1 {r['synapse_f1']:.3f} "
                  f"(load {r['load_1min']:.1f})", flush=True)
    summary: dict[str, Any] = {}
    for name in nets:
        mine = [r for r in rows if r["net"] == name]
        summary[name] = {k: float(np.mean([r[k] for r in mine]))
                         for k in ("kvox_per_s", "nerl", "voi", "synapse_f1")}
        summary[name]["predict_s"] = float(np.sum([r["predict_s"] for r in mine]))
    base = next(iter(nets))
    for name in nets:
        summary[name]["speedup"] = summary[base]["predict_s"] / summary[name]["predict_s"]
        for k in ("nerl", "voi", "synapse_f1"):
            summary[name][f"delta_{k}"] = summary[name][k] - summary[base][k]
        print(f"{name}: {summary[name]['speedup']:.2f}x the speed of {base}; mean NERL "
              f"{summary[name]['nerl']:.3f} ({summary[name]['delta_nerl']:+.3f}), VOI "
              f"{summary[name]['voi']:.3f} ({summary[name]['delta_voi']:+.3f}), synapse F1 "
              f"{summary[name]['synapse_f1']:.3f} ({summary[name]['delta_synapse_f1']:+.3f})")
    load_end = load_1min()
    print(f"load {load_start:.1f} at start, {load_end:.1f} at end")
    args.out.write_text(json.dumps({"shape_zyx": list(shape), "tile": [tz, ty, tx],
                                    "rows": rows, "summary": summary,
                                    "load_start": load_start, "load_end": load_end},
                                   indent=2))


if __name__ == "__main__":
    main()
