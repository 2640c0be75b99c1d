"""Benchmark: a worker's peak memory and speed while the affinity network predicts one block, per
network and prediction tile limit, each in its own process.

    uv run python bench/reconstruct/network_memory.py --block 64,256,256 \
        --tiles 64,256,256:32,256,256:32,128,128

For each network (the shipped `full` one and the distilled `lean` one) and each tile limit
(`affinity_net.TILE`), a fresh process imports JAX, predicts a region of zeros (compiling), then
the `--block` region of a synthetic clean image (its prepared intensities, with the network's
halo as context), and reports its peak RSS (`getrusage`), its RSS after imports, the
prediction's seconds and kvox/s. The network's activations are what a worker's peak is made of
(`bench/reconstruct/scale.py`), so this is the figure that sizes blocks and tiles.
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


def _triple(text: str) -> tuple[int, int, int]:
    z, y, x = (int(t) for t in text.split(","))
    return z, y, x


def child(net_name: str, tile: tuple[int, int, int], block: tuple[int, int, int]) -> None:
    """In a fresh process: predict one block; print a JSON line."""
    import numpy as np
    import psutil

    from connectome_query.reconstruct import affinity_net, io, synth, training

    rss_ready = psutil.Process().memory_info().rss / 2**20
    affinity_net.TILE = tile
    net = io.load_net(training.SHIPPED_NETS[net_name])
    hz, hy, hx = affinity_net.HALO
    shape = (block[0] + 2 * hz, block[1] + 2 * hy, block[2] + 2 * hx)
    img = synth.synthesize(synth.SynthConfig(shape, (40.0, 16.0, 16.0), "clean", 3)).image
    a = affinity_net.prepare(img)
    affinity_net.predict_region(net, np.zeros_like(a))  # compiles the tile shape
    t = time.perf_counter()
    affs, _ = affinity_net.predict_region(net, np.ascontiguousarray(a))
    dt = time.perf_counter() - t
    assert affs.shape[1:] == block
    print(json.dumps({"net": net_name, "tile_limit": list(tile),
                      "tile_used": list(affinity_net.tile_shape(block)),
                      "block": list(block), "s": dt, "kvox_per_s": affs[0].size / dt / 1e3,
                      "rss_after_imports_mb": rss_ready,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def _load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--block", default="64,256,256", help="z,y,x core voxels")
    ap.add_argument("--tiles", default="64,256,256:32,256,256:32,128,128",
                    help="tile limits z,y,x separated by ':'")
    ap.add_argument("--nets", default="full,lean")
    ap.add_argument("--out", type=Path, default=Path("bench/reconstruct/network_memory.json"))
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], _triple(args.child[1]), _triple(args.child[2]))
        return
    load_start = _load()
    rows: list[dict[str, Any]] = []
    for net in args.nets.split(","):
        for tile in args.tiles.split(":"):
            r = subprocess.run([sys.executable, __file__, "--child", net, tile, args.block],
                               capture_output=True, text=True, check=True)
            row = json.loads(r.stdout.strip().splitlines()[-1])
            row["load_1min"] = _load()
            rows.append(row)
            print(f"{net} tile {row['tile_used']}: {row['kvox_per_s']:.0f} kvox/s, peak "
                  f"{row['peak_rss_mb']:.0f} MB ({row['rss_after_imports_mb']:.0f} after "
                  f"imports), load {row['load_1min']:.1f}", flush=True)
    load_end = _load()
    print(f"load {load_start:.1f} at start, {load_end:.1f} at end")
    args.out.write_text(json.dumps({"block": args.block, "rows": rows,
                                    "load_start": load_start, "load_end": load_end}, indent=2))


if __name__ == "__main__":
    main()
