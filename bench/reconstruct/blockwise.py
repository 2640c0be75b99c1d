"""Benchmark: whole-volume segmentation against slab-by-slab segmentation from zarr.

    uv run python bench/reconstruct/blockwise.py --size 256 --slab 64 \
        --workdir /tmp/cq/benchwork

Uses the volume and cached affinities that `bench/reconstruct/run.py --workdir` leaves
(run it first), or with `--synthetic Z,Y,X` a bigger synthetic volume's true affinities.
Each mode runs in its own process, after a warm-up, with its peak resident memory reset
(Linux `/proc/self/clear_refs`), so the peak is the work's own.
"whole" loads the affinities and segments them at once; "blockwise" reads them from a
zarr copy `--slab` sections at a time and writes labels to zarr
(`segment.seeded_segmentation_blockwise`). Prints seconds, peak memory, NERL and VOI of
each, and the VOI between the two segmentations; writes JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from connectome_query.reconstruct import boundary, io, metrics, scoring, segment, synth

VS = (40.0, 16.0, 16.0)


def child(mode: str, em: Path, affs_zarr: Path, out: Path, slab: int) -> None:
    """One mode in this process; prints a JSON line."""
    shape = tuple(io.read_volume_info(em)["shape_zyx"])
    # load the kernels and libraries first, so the peak above this is the work's own
    small = np.random.default_rng(0).random((3, 16, 32, 32)).astype(np.float32)
    segment.seeded_segmentation(small, VS)
    segment.seeded_segmentation_blockwise(lambda z0, z1: small[:, z0:z1], small.shape[1:],
                                          VS, _Memory(small.shape[1:]), slab=8)
    Path("/proc/self/clear_refs").write_text("5")  # Linux: peak RSS := current RSS
    base_mb = _status_mb("VmHWM")
    t = time.perf_counter()
    if mode == "whole":
        seg = segment.seeded_segmentation(io.read_affinities(affs_zarr, shape), VS)
        io.write_zarr(out, seg)
    else:
        st = io.open_affinities(affs_zarr, shape)
        labels = io.ZarrLabels(out, shape, {})
        segment.seeded_segmentation_blockwise(
            lambda z0, z1: io.read_affinity_block(st, affs_zarr, z0, z1), shape, VS,
            labels, slab=slab)
    dt = time.perf_counter() - t
    peak_mb = _status_mb("VmHWM")
    print(json.dumps({"mode": mode, "seconds": dt, "peak_rss_mb": peak_mb,
                      "rss_before_mb": base_mb}))


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return float(line.split()[1]) / 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


class _Memory:
    def __init__(self, shape: tuple[int, ...]) -> None:
        self.a = np.zeros(shape, np.uint64)

    def write(self, z0: int, labels: np.ndarray) -> None:
        self.a[z0:z0 + labels.shape[0]] = labels

    def read(self, z0: int, z1: int) -> np.ndarray:
        return self.a[z0:z1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--slab", type=int, default=64)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("bench/reconstruct/blockwise.json"))
    ap.add_argument("--synthetic", default="",
                    help="z,y,x: synthesise a clean volume this size and use its true "
                         "affinities instead of the cached predicted ones")
    ap.add_argument("--child", nargs=4, metavar=("MODE", "EM", "AFFS", "OUT"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        mode, em, affs, out = args.child
        child(mode, Path(em), Path(affs), Path(out), args.slab)
        return
    affs_zarr = args.workdir / "bench_affinities.zarr"
    if args.synthetic:  # a bigger volume, its true affinities (no network needed)
        z, y, x = (int(v) for v in args.synthetic.split(","))
        em = args.workdir / f"em_{z}x{y}x{x}_clean_{args.seed}"
        if not (em / "volume.json").exists():
            io.write_synthetic_em(em, synth.SynthConfig((z, y, x), VS, "clean", args.seed))
        gt = io.read_truth(em, (z, y, x))
        assert gt is not None
        io.write_zarr(affs_zarr, boundary.true_affinities(gt["segmentation"]))
    else:
        em = args.workdir / f"em_{args.size}_clean_{args.seed}"
        cached = sorted(em.glob("predicted_affinities_*.npy"))
        if not cached:
            sys.exit(f"no cached affinities in {em}: run bench/reconstruct/run.py "
                     "--workdir first, or pass --synthetic")
        io.write_zarr(affs_zarr, np.load(cached[-1]))
    truth = io.read_truth(em, tuple(io.read_volume_info(em)["shape_zyx"]))
    assert truth is not None
    rows, segs = [], {}
    for mode in ("whole", "blockwise"):
        out = args.workdir / f"bench_seg_{mode}.zarr"
        res = subprocess.run([sys.executable, __file__, "--slab", str(args.slab),
                              "--workdir", str(args.workdir), "--child", mode, str(em),
                              str(affs_zarr), str(out)], capture_output=True, text=True,
                             check=True)
        row = json.loads(res.stdout.strip().splitlines()[-1])
        seg = io.read_block(io.open_zarr(out), slice(None), out)
        sc = scoring.segmentation_scores(seg, truth, VS)
        row.update({"nerl": sc["nerl"], "voi": sc["voi"]})
        rows.append(row)
        segs[mode] = seg
        print(f"{mode}: {row['seconds']:.2f} s, peak {row['peak_rss_mb']:.0f} MB "
              f"(from {row['rss_before_mb']:.0f} MB before), "
              f"NERL {sc['nerl']:.3f}, VOI {sc['voi']:.3f}", flush=True)
    split, merge = metrics.voi(segs["whole"], segs["blockwise"])
    print(f"VOI between the two: {split + merge:.3f} (split {split:.3f}, merge {merge:.3f})")
    args.out.write_text(json.dumps({"volume": str(em), "slab": args.slab, "rows": rows,
                                    "voi_between": split + merge}, indent=2))


if __name__ == "__main__":
    main()
