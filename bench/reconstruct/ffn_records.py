"""Bytes of a blockwise FFN block's record, stored as the engine stores it against the old way
(slabs as uint32, not compressed), for one block of a labelled volume.

    uv run python bench/reconstruct/ffn_records.py LABELS.zarr [--block 64,256,256] [--at Z,Y,X]

LABELS.zarr stands in for the FFN's output over the block's region (the block grown by half the
FOV per side): e.g. a synthetic volume's `truth/segmentation.zarr` or a run's
`segmentation.zarr`, split into connected pieces as a block's canvas is. The record is built by
`ffn.blockwise.block_record`, saved by `engine.manifest.save_record` and read back, and must
equal what was saved.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from connectome_query.reconstruct import io
from connectome_query.reconstruct.engine.grid import Box
from connectome_query.reconstruct.engine.manifest import load_record, save_record
from connectome_query.reconstruct.ffn import blockwise, inference, model


def _triple(text: str) -> tuple[int, int, int]:
    z, y, x = (int(v) for v in text.split(","))
    return z, y, x


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("labels", type=Path)
    ap.add_argument("--block", type=_triple, default=(64, 256, 256))
    ap.add_argument("--at", type=_triple, default=None, help="block corner (default: centre)")
    args = ap.parse_args()
    load = [Path("/proc/loadavg").read_text().split()[0]]
    store = io.open_zarr(args.labels, "labels")
    shape = _triple(",".join(str(int(s)) for s in store.shape))
    at = args.at or _triple(",".join(str((s - b) // 2)
                                     for s, b in zip(shape, args.block, strict=True)))
    box = Box(at, _triple(",".join(str(a + b) for a, b in zip(at, args.block, strict=True))))
    margin = blockwise.default_margin(model.FOV)
    region = box.grow(margin, shape)
    seg = inference.cut_at_mask(io.read_block(store, region.slices(), args.labels),
                                np.zeros(region.shape, bool))
    _, rec = blockwise.block_record(seg, box, region, margin, shape)
    slabs = [k for k in rec if k.startswith(("low", "high"))]
    old = {k: v.astype(np.uint32) if k in slabs else v for k, v in rec.items()}
    with tempfile.TemporaryDirectory() as tmp:
        save_record(Path(tmp) / "old.npz", old)
        save_record(Path(tmp) / "new.npz", rec, compress=True)
        back = load_record(Path(tmp) / "new.npz")
        sizes = {k: (Path(tmp) / f"{k}.npz").stat().st_size for k in ("old", "new")}
    same = set(back) == set(rec) and all(
        back[k].dtype == rec[k].dtype and np.array_equal(back[k], rec[k]) for k in rec)
    load.append(Path("/proc/loadavg").read_text().split()[0])
    print(json.dumps({
        "labels": "/".join(args.labels.resolve().parts[-2:]), "block": list(args.block),
        "at": list(at),
        "region_objects": int(seg.max()), "slab_voxels": int(sum(rec[k].size for k in slabs)),
        "slab_dtype": str(rec[slabs[0]].dtype) if slabs else None,
        "bytes_uncompressed_uint32": sizes["old"], "bytes_stored": sizes["new"],
        "ratio": round(sizes["old"] / sizes["new"], 1), "read_back_identical": same,
        "load_1min": load}, indent=1))
    if not same:
        raise SystemExit("the record read back differs from the one saved")


if __name__ == "__main__":
    main()
