"""Benchmark: does restoring the sections the front end flags help the reconstruction?

    uv run python bench/reconstruct/restore.py --size 32,128,128 --seeds 201,202

Held-out style-A volumes (`synth-em`, seeds disjoint from the restorer's training volumes) are
damaged in their own frame as the front end meets damage (`adapt.degrade.bench_plan`: about
one section in four blurred, folded, cracked, partly or wholly missing, and a run of two
missing sections), with the damage's defect flags written as a prepared volume's
`defects.zarr`. Each is reconstructed by `pipeline.reconstruct` (the watershed, synapses from
the network's cleft channel) four ways, in one run:
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
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from connectome_query.reconstruct import io, pipeline, synth, training
from connectome_query.reconstruct.adapt import degrade, restore
from connectome_query.reconstruct.align import restore as fill
from connectome_query.reconstruct.align.masks import LINE_DEFECTS, SECTION_DEFECTS, Defect, has
from connectome_query.reconstruct.engine.cluster import ClusterSpec

VS = (40.0, 16.0, 16.0)
DEFAULT_RESTORER = training.DEFAULT_NET.parent / "restorer.npz"
METHODS = ("damaged, flagged voxels masked", "filled from neighbours, masked (prepare)",
           "restorer (--restore)", "undamaged (reference)")


def load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def damaged_em(clean: Path, out: Path, image: np.ndarray, flags: np.ndarray) -> Path:
    """A copy of the EM directory `clean` with `image` and the defect flags of a prepared
    volume."""
    shutil.copytree(clean, out)
    info = io.read_volume_info(out)
    attrs = {"voxel_size_nm_xyz": list(VS[::-1])}
    shutil.rmtree(out / "image.zarr")
    io.write_zarr(out / "image.zarr", image, attributes=attrs)
    io.write_zarr(out / "defects.zarr", flags, attributes=attrs)
    io.write_json(out / "volume.json", {**info, "defects": "defects.zarr"})
    return out


def scores(result: dict[str, Any]) -> dict[str, Any]:
    p = result["pipeline"]
    return {k: p[k] for k in ("nerl", "voi", "voi_split", "voi_merge", "synapses_predicted",
                              "synapses_true", "synapses_matched", "synapse_f1")}


def pooled_f1(rows: list[dict[str, Any]]) -> float:
    tp = sum(r["synapses_matched"] for r in rows)
    n = sum(r["synapses_predicted"] + r["synapses_true"] for r in rows)
    return 2 * tp / n if n else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", default="32,128,128", help="Z,Y,X of each held-out volume")
    ap.add_argument("--seeds", default="201,202", help="held-out seeds")
    ap.add_argument("--preset", default="clean", choices=["clean", "noisy"])
    ap.add_argument("--restorer", type=Path, default=DEFAULT_RESTORER)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("bench/reconstruct/restore.json"))
    args = ap.parse_args()
    con = Console(width=150)
    load0 = load()
    shape = tuple(int(v) for v in args.size.split(","))
    restorer = io.load_restorer(args.restorer)
    spec = ClusterSpec(workers=args.workers, threads=1)
    rows: dict[str, list[dict[str, Any]]] = {m: [] for m in METHODS}
    t_restore, n_restore = 0.0, 0
    restore.restore(restorer, *degrade.degrade_volume(np.zeros((4, 64, 64), np.uint8),
                                                      [(1, "blur")], 0))  # compile
    with tempfile.TemporaryDirectory() as tmp:
        for seed in (int(s) for s in args.seeds.split(",")):
            em = Path(tmp) / f"clean{seed}"
            io.write_synthetic_em(em, synth.SynthConfig(shape, VS, args.preset, seed))  # type: ignore[arg-type]
            img = io.read_image(em, io.read_volume_info(em))
            damaged, flags = degrade.degrade_volume(img, degrade.bench_plan(shape[0]), seed)
            bad = has(flags, LINE_DEFECTS | SECTION_DEFECTS)
            filled = fill.fill_from_neighbours(damaged, bad)
            t = time.perf_counter()
            restore.restore(restorer, damaged, flags)
            t_restore += time.perf_counter() - t
            n_restore += int(bad.any(axis=(1, 2)).sum()) * shape[1] * shape[2]
            ems = {
                METHODS[0]: (damaged_em(em, Path(tmp) / f"d{seed}", damaged, flags), None),
                METHODS[1]: (damaged_em(em, Path(tmp) / f"f{seed}", filled,
                                        np.where(bad, flags | np.uint8(Defect.FILLED), flags)),
                             None),
                METHODS[2]: (Path(tmp) / f"d{seed}", args.restorer),
                METHODS[3]: (em, None),
            }
            for k, (name, (em_dir, weights)) in enumerate(ems.items()):
                result = pipeline.reconstruct(em_dir, Path(tmp) / f"run{seed}_{k}", spec=spec,
                                              restorer_path=weights)
                rows[name].append({"seed": seed, **scores(result)})
                con.print(f"seed {seed}: {name}: {rows[name][-1]}")
    tab = Table(title=f"Damaged volumes {args.size} (z,y,x), {args.preset}, seeds {args.seeds}")
    for c in ("method", "NERL", "VOI", "VOI split", "VOI merge", "synapse F1 (pooled)"):
        tab.add_column(c, justify="left" if c == "method" else "right")
    summary: dict[str, Any] = {}
    for name, rs in rows.items():
        m = {k: float(np.mean([r[k] for r in rs])) for k in ("nerl", "voi", "voi_split",
                                                            "voi_merge")}
        m["synapse_f1_pooled"] = pooled_f1(rs)
        summary[name] = m
        tab.add_row(name, f"{m['nerl']:.3f}", f"{m['voi']:.3f}", f"{m['voi_split']:.3f}",
                    f"{m['voi_merge']:.3f}", f"{m['synapse_f1_pooled']:.3f}")
    con.print(tab)
    load1 = load()
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
