"""Benchmark: does restoring the sections the front end flags help the reconstruction?

    uv run python bench/reconstruct/restore.py --size 32,128,128 --seeds 201,202

Held-out style-A volumes (`synth-em`, seeds disjoint from the restorer's training volumes) are
damaged in their own frame as the front end meets damage (`adapt.degrade.bench_plan`: about
one section in four blurred, folded, cracked, partly or wholly missing, and a run of two
missing sections), with the damage's defect flags written as a prepared volume's
`defects.zarr`. Each is segmented in this process as a run segments it (the shipped affinity
network, links touching a masked voxel severed as `engine.segmentation` does with
`lattice.sever`, the seeded watershed, masked voxels segment 0, synapses from the cleft channel
outside masked voxels; the join across wholly masked sections, `segment.gaps`, is left out)
four ways, in one run:
- damaged, flagged voxels masked (`connectome prepare --no-fill`);
- flagged voxels filled from their neighbours along z and still masked (`prepare`'s default,
  `align.restore.fill_from_neighbours`; FILLED added to the flags);
- damaged, restored by the restorer (`reconstruct --restore`; decisions taken from restored
  voxels);
- the undamaged volume (the reference).
Scores: NERL, VOI, synapse F1 (partners right; pooled over the volumes). Also timed: the
restoration's voxels/s over the flagged sections; load average at start and end. Prints a
rich table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from bench.common import load_1min, quality_table, segmentation_quality
from connectome_query.reconstruct import (
    io,
    synth,
    synthetic_em,
    training,
)
from connectome_query.reconstruct.adapt import degrade, restore
from connectome_query.reconstruct.align import restore as fill
from connectome_query.reconstruct.align.masks import LINE_DEFECTS, SECTION_DEFECTS, has

VS = (40.0, 16.0, 16.0)
DEFAULT_RESTORER = training.DEFAULT_NET.parent / "restorer.npz"
METHODS = ("damaged, flagged voxels masked", "filled from neighbours, masked (prepare)",
           "restorer (--restore)", "undamaged (reference)")




def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", default="32,128,128", help="Z,Y,X of each held-out volume")
    ap.add_argument("--seeds", default="201,202", help="held-out seeds")
    ap.add_argument("--preset", default="clean", choices=["clean", "noisy"])
    ap.add_argument("--restorer", type=Path, default=DEFAULT_RESTORER)
    ap.add_argument("--out", type=Path, default=Path("bench/reconstruct/restore.json"))
    args = ap.parse_args()
    con = Console(width=150)
    load0 = load_1min()
    shape = tuple(int(v) for v in args.size.split(","))
    restorer = io.load_restorer(args.restorer)
    net = io.load_net(training.DEFAULT_NET)
    rows: dict[str, list[dict[str, Any]]] = {m: [] for m in METHODS}
    t_restore, n_restore = 0.0, 0
    restore.restore(restorer, *degrade.degrade_volume(np.zeros((4, 64, 64), np.uint8),
                                                      [(1, "blur")], 0))  # compile
    for seed in (int(v) for v in args.seeds.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            em = Path(tmp) / "em"
            synthetic_em.write_synthetic_em(em, synth.SynthConfig(shape, VS, args.preset, seed))  # type: ignore[arg-type]
            clean = io.read_image(em, io.read_volume_info(em))
            truth = io.read_truth(em, clean.shape)
        assert truth is not None
        damaged, flags = degrade.degrade_volume(clean, degrade.bench_plan(shape[0]), seed)
        bad = has(flags, LINE_DEFECTS | SECTION_DEFECTS)
        t = time.perf_counter()
        restored = restore.restore(restorer, damaged, flags)
        t_restore += time.perf_counter() - t
        n_restore += int(bad.any(axis=(1, 2)).sum()) * shape[1] * shape[2]
        images = {METHODS[0]: (damaged, flags),
                  METHODS[1]: (fill.fill_from_neighbours(damaged, bad), flags),
                  METHODS[2]: (restored, restore.cleared(flags)),
                  METHODS[3]: (clean, None)}
        for name, (image, fl) in images.items():
            rows[name].append({"seed": seed, **segmentation_quality(net, image, truth, VS, fl)})
            con.print(f"seed {seed}: {name}: {rows[name][-1]}")
    tab, summary = quality_table(
        rows, f"Damaged volumes {args.size} (z,y,x), {args.preset}, seeds {args.seeds}")
    con.print(tab)
    load1 = load_1min()
    timing = {"restoration_voxels_per_s": n_restore / t_restore, "load_start": load0,
              "load_end": load1, "restorer_meta": restorer.meta}
    con.print(f"restoration {n_restore / t_restore / 1e6:.2f} Mvox/s over the flagged "
              f"sections; load {load0:.1f} -> {load1:.1f}")
    args.out.write_text(json.dumps({"size": args.size, "seeds": args.seeds, "preset":
                                    args.preset, "plan": degrade.bench_plan(shape[0]),
                                    "summary": summary, "rows": rows, "timing": timing},
                                   indent=2, default=float) + "\n")
    con.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
