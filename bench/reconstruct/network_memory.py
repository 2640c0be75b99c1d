"""Benchmark: a worker's peak memory and speed while the affinity network predicts one block, per
network and prediction tile limit, each in its own process.

    uv run python bench/reconstruct/network_memory.py --block 64,256,256 \
        --tiles 64,256,256:32,256,256:32,128,128
    uv run python bench/reconstruct/network_memory.py --budgets 2GB,1.5GB --volume 256,1024,1024

For each network (`--nets`: the shipped `full` one, the distilled `lean` and `coarse` ones) and
each tile limit, a fresh process imports JAX, predicts a region of zeros (compiling), then the
block of a synthetic clean image (its prepared intensities, with the network's halo as
context), and reports its peak RSS (`getrusage`), its RSS after imports, the prediction's
seconds and kvox/s. The network's activations are what a worker's peak is made of
(`bench/reconstruct/scale.py`), so this is the figure that sizes blocks and tiles.

With `--budgets`, the block and the tile are the engine's own choice for a worker of each
memory limit on a volume of `--volume` (`engine.memory.default_block`, `prediction_tile`), and
each row says whether the measured peak stayed under the limit and under the estimate.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import load_1min


def _triple(text: str) -> tuple[int, int, int]:
    z, y, x = (int(t) for t in text.split(","))
    return z, y, x


def region_image(net_name: str, block: tuple[int, int, int], folder: Path) -> Path:
    """A synthetic clean image of the block with the network's context, prepared, saved as
    .npy in `folder` (made here, so that the child's peak is the prediction's alone)."""
    import numpy as np

    from connectome_query.reconstruct import affinity_net, io, synth, training

    stride = affinity_net.net_stride(io.load_net(training.SHIPPED_NETS[net_name]))
    hz, hy, hx = affinity_net.halo(stride)
    shape = (block[0] + 2 * hz, block[1] + 2 * hy, block[2] + 2 * hx)
    path = folder / f"{'x'.join(map(str, shape))}.npy"
    if not path.exists():
        img = synth.synthesize(synth.SynthConfig(shape, (40.0, 16.0, 16.0), "clean", 3)).image
        np.save(path, affinity_net.prepare(img))
    return path


def child(net_name: str, tile: tuple[int, int, int], block: tuple[int, int, int],
          image: Path) -> None:
    """In a fresh process: predict one block of the prepared `image`; print a JSON line."""
    import numpy as np
    import psutil

    from connectome_query.reconstruct import affinity_net, io, training
    from connectome_query.reconstruct.engine import memory

    rss_ready = psutil.Process().memory_info().rss / 2**20
    net = io.load_net(training.SHIPPED_NETS[net_name])
    stride = affinity_net.net_stride(net)
    a = np.load(image)
    affinity_net.predict_region(net, np.zeros_like(a), tile=tile)  # compiles the tile shape
    t = time.perf_counter()
    affs, _ = affinity_net.predict_region(net, np.ascontiguousarray(a), tile=tile)
    dt = time.perf_counter() - t
    assert affs.shape[1:] == block
    print(json.dumps({"net": net_name, "tile_limit": list(tile),
                      "tile_used": list(affinity_net.tile_shape(block, tile, stride)),
                      "estimate_mb": memory.prediction_peak(block, tile, stride) / 2**20,
                      "block": list(block), "s": dt, "kvox_per_s": affs[0].size / dt / 1e3,
                      "rss_after_imports_mb": rss_ready,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def _plan(args: argparse.Namespace) -> list[tuple[str, str, str, int | None]]:
    """(net, tile limit, block, memory limit or None) of each child run."""
    if args.budgets is None:
        return [(net, tile, args.block, None) for net in args.nets.split(",")
                for tile in args.tiles.split(":")]
    from connectome_query.reconstruct import affinity_net, io, training
    from connectome_query.reconstruct.engine import cluster, context, memory

    volume = _triple(args.volume)
    out: list[tuple[str, str, str, int | None]] = []
    for net in args.nets.split(","):
        stride = affinity_net.net_stride(io.load_net(training.SHIPPED_NETS[net]))
        for text in args.budgets.split(","):
            limit = cluster.memory_bytes(text)
            block = memory.default_block(volume, limit, stride)
            net_block = context.Run("", "", volume, (40.0, 16.0, 16.0), block).net_grid.block
            tile = memory.prediction_tile(net_block, limit, stride)
            out.append((net, ",".join(map(str, tile)), ",".join(map(str, net_block)), limit))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--block", default="64,256,256", help="z,y,x core voxels")
    ap.add_argument("--tiles", default="64,256,256:32,256,256:32,128,128",
                    help="tile limits z,y,x separated by ':'")
    ap.add_argument("--nets", default="full,lean,coarse")
    ap.add_argument("--budgets", default=None,
                    help="worker memory limits, e.g. 2GB,1.5GB: the engine chooses block and "
                         "tile")
    ap.add_argument("--volume", default="256,1024,1024",
                    help="z,y,x of the volume the engine chooses the block for (--budgets)")
    ap.add_argument("--out", type=Path, default=Path("bench/reconstruct/network_memory.json"))
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], _triple(args.child[1]), _triple(args.child[2]),
              Path(args.child[3]))
        return
    load_start = load_1min()
    rows: list[dict[str, Any]] = []
    folder = Path(tempfile.mkdtemp())
    for net, tile, block, budget in _plan(args):
        image = region_image(net, _triple(block), folder)
        r = subprocess.run([sys.executable, __file__, "--child", net, tile, block, str(image)],
                           capture_output=True, text=True, check=True)
        row = json.loads(r.stdout.strip().splitlines()[-1])
        row["load_1min"] = load_1min()
        if budget is not None:
            row["budget_mb"] = budget / 2**20
            row["under_budget"] = row["peak_rss_mb"] <= row["budget_mb"]
        rows.append(row)
        print(f"{net} block {block} tile {row['tile_used']}: {row['kvox_per_s']:.0f} kvox/s, "
              f"peak {row['peak_rss_mb']:.0f} MB (estimate {row['estimate_mb']:.0f}; "
              f"{row['rss_after_imports_mb']:.0f} after imports)"
              + (f", budget {row['budget_mb']:.0f} MB" if budget is not None else "")
              + f", load {row['load_1min']:.1f}", flush=True)
    shutil.rmtree(folder)
    load_end = load_1min()
    print(f"load {load_start:.1f} at start, {load_end:.1f} at end")
    args.out.write_text(json.dumps({"block": args.block, "budgets": args.budgets,
                                    "volume": args.volume, "rows": rows,
                                    "load_start": load_start, "load_end": load_end}, indent=2))


if __name__ == "__main__":
    main()
