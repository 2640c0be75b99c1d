"""Benchmark: affinity prediction speed with tiles of up to 64x256x256 (shipped) against
tiles of up to 24x192x192 (the old limit), both split evenly, on the same image in one run.

    uv run python bench/reconstruct/predict_tiles.py --shape 64,256,256

Synthesises a clean volume (z, y, x), predicts affinities with the shipped network once
per tiling (after a small warm-up call that compiles it) and prints seconds, voxels per
second, the ratio and the largest difference between the outputs (0: same numbers).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from connectome_query.reconstruct import affinity_net, io, synth, training

OLD_TILE = (24, 192, 192)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shape", default="64,256,256", help="z,y,x voxels")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("bench/reconstruct/predict_tiles.json"))
    args = ap.parse_args()
    z, y, x = (int(v) for v in args.shape.split(","))
    img = synth.synthesize(
        synth.SynthConfig((z, y, x), (40.0, 16.0, 16.0), "clean", args.seed)).image
    net = io.load_net(training.DEFAULT_NET)
    new_tile = affinity_net.TILE
    rows = {}
    outs = {}
    for name, tile in (("old tile limit", OLD_TILE), ("shipped tile limit", new_tile)):
        affinity_net.TILE = tile
        affinity_net.predict(net, img[:8, :64, :64])  # compile outside the timing
        t = time.perf_counter()
        outs[name], _ = affinity_net.predict(net, img)
        dt = time.perf_counter() - t
        rows[name] = {"tile_limit": list(tile),
                      "tile_used": list(affinity_net.tile_shape(img.shape)), "s": dt,
                      "kvox_per_s": img.size / dt / 1e3}
        print(f"{name}: tile {rows[name]['tile_used']} {dt:.1f} s "
              f"{rows[name]['kvox_per_s']:.0f} kvox/s", flush=True)
    affinity_net.TILE = new_tile
    a, b = outs.values()
    diff = float(np.abs(a - b).max())
    ratio = rows["old tile limit"]["s"] / rows["shipped tile limit"]["s"]
    print(f"speed-up {ratio:.2f}x, largest output difference {diff:.2e}")
    args.out.write_text(json.dumps({"shape_zyx": [z, y, x], "rows": rows, "ratio": ratio,
                                    "max_abs_difference": diff}, indent=2))


if __name__ == "__main__":
    main()
