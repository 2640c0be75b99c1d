"""Where the front end loses NERL and synapse F1: one raw volume through variants of the front
end, each scored downstream, one run.

    uv run python bench/reconstruct/front_end_ablation.py --size 256,256,32 \
        --seeds 31,37 --work WORK --json bench/reconstruct/front_end_256x256x32.json

For each held-out seed (the downstream bench's rules), on the `raw` preset and on the same
tissue with its defects off (no folds, cracks, blur or missing sections; same tiles,
deformation and contrast drift):

- clean: the undeformed EM directory (`truth/undeformed`);
- front end: `connectome prepare` as it is;
- true maps: the same, the elastic alignment replaced by the true maps (every aligned pixel
  shows the undeformed tissue at its own place, through the stitch's tile placements, the
  true ones and the true deformation): what a perfect aligner would leave;
- true masks: the same, the defect detection replaced by the true defects (section flags and
  fold and crack bands carried into the stitched frame);
- stitch only: the stitch, defects, fill and contrast, no alignment (identity maps);
- nearest fill: masked voxels filled from the nearer good section instead of the linear blend
  of the two either side.

Every variant is scored in its own frame (`align.truth_frame`), as the downstream bench does.
Steps already done in `--work` are reused.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd
import scipy.ndimage as ndi

from bench.common import load_1min
from bench.reconstruct.front_end_downstream import KEYS, Steps, _cli
from connectome_query.reconstruct import io, synth
from connectome_query.reconstruct.align import defects as defects_
from connectome_query.reconstruct.align import (
    elastic,
    evaluate,
    prepare,
    rawdir,
    restore,
    truth_frame,
)
from connectome_query.reconstruct.align.masks import LINE_DEFECTS, SECTION_DEFECTS
from connectome_query.reconstruct.align.rawdir import read_raw_info
from connectome_query.reconstruct.align.warp import identity_nodes
from connectome_query.reconstruct.synth import raw as raw_synth

ORACLE_STRIDE = 8
"""Node spacing of the true maps (px): fine enough to follow the deformation's steps."""


def _tiles(path: Path, grid: tuple[int, int], nz: int) -> tuple[np.ndarray, np.ndarray,
                                                                 np.ndarray]:
    df = pd.read_parquet(path).sort_values(["section", "row", "col"])
    shape = (nz, *grid)
    used = df["used"].to_numpy(bool) if "used" in df else np.ones(len(df), bool)
    return (df[["origin_y", "origin_x"]].to_numpy(np.float64).reshape(*shape, 2),
            df["rotation_rad"].to_numpy(np.float64).reshape(shape), used.reshape(shape))


def stitched_tissue(raw_dir: Path, em_dir: Path, z: int) -> tuple[np.ndarray, np.ndarray,
                                                                  np.ndarray]:
    """(undeformed tissue position q (y, x, 2) of every stitched pixel of section z, its true
    section position (y, x, 2), covered (y, x)), from the stitch's tile placements
    (EM_DIR/tiles.parquet), the true ones and the true deformation."""
    info = read_raw_info(raw_dir)
    lay, nz = info.layout, info.sections
    placed = _tiles(em_dir / "tiles.parquet", lay.grid, nz)
    true = _tiles(raw_dir / "truth" / "tiles.parquet", lay.grid, nz)
    src, covered = truth_frame.stitched_truth(tuple(a[z] for a in placed),
                                              (true[0][z], true[1][z]), lay)
    d = np.asarray(io.open_zarr(raw_dir / "truth" / "deformation.zarr", "deformation")[z]
                   .read().result())
    ident = np.mgrid[0:lay.section_shape[0], 0:lay.section_shape[1]].astype(np.float32)
    return evaluate.tissue_positions(ident, src, d), src, covered


def true_nodes(q: np.ndarray, covered: np.ndarray, stride: int, iterations: int = 30
               ) -> np.ndarray:
    """Map nodes (gy, gx, 2) under which aligned pixel p shows tissue position p: the stitched
    position s with q(s) = p, by the fixed point s = p - (q(s) - s) (q's displacement from
    the stitched grid is smooth but for fold and crack steps; outside the section and at
    uncovered pixels it is carried on from the nearest covered pixel)."""
    ny, nx = covered.shape
    grid = np.moveaxis(np.mgrid[0:ny, 0:nx], 0, -1).astype(np.float64)
    disp = q - grid
    if not covered.all():
        idx = ndi.distance_transform_edt(~covered, return_distances=False, return_indices=True)
        disp = disp[idx[0], idx[1]]
    gshape = (int(np.ceil((ny - 1) / stride)) + 1, int(np.ceil((nx - 1) / stride)) + 1)
    p = identity_nodes(gshape, stride)
    s = p.copy()
    for _ in range(iterations):
        d = np.stack([ndi.map_coordinates(disp[..., k], [s[..., 0], s[..., 1]], order=1,
                                          mode="nearest") for k in range(2)], axis=-1)
        s = p - d
    return s


def oracle_align(raw_dir: Path, em_dir: Path) -> Callable[..., elastic.Maps]:
    """An `elastic.align_stack` stand-in returning the true maps."""

    def align_stack(_section: Any, _mask: Any, nz: int, *args: Any, **kw: Any) -> elastic.Maps:
        nodes = []
        for z in range(nz):
            q, _, covered = stitched_tissue(raw_dir, em_dir, z)
            nodes.append(true_nodes(q, covered, ORACLE_STRIDE))
        return elastic.Maps(np.stack(nodes), ORACLE_STRIDE, np.arange(nz) - 1, np.ones(nz),
                            np.zeros(nz, int), ["true maps (ablation)"])
    return align_stack


def identity_align(_section: Any, _mask: Any, nz: int, usable: Any, reference_ok: Any,
                   shape: tuple[int, int], config: elastic.AlignConfig, *a: Any,
                   **kw: Any) -> elastic.Maps:
    """An `elastic.align_stack` stand-in that does not align (identity maps)."""
    st = config.stride
    grid = (int(np.ceil((shape[0] - 1) / st)) + 1, int(np.ceil((shape[1] - 1) / st)) + 1)
    nodes = np.broadcast_to(identity_nodes(grid, st), (nz, *grid, 2)).copy()
    return elastic.Maps(nodes, st, np.full(nz, -1), np.zeros(nz), np.zeros(nz, int),
                        ["no alignment (ablation)"])


@contextmanager
def true_defects(raw_dir: Path, em_dir: Path) -> Iterator[None]:
    """The defect detection replaced by the truth: section flags from the true masks, fold
    and crack bands carried into the stitched frame (the detector's calls come in section
    order, for the sections without a section-wide flag)."""
    info = read_raw_info(raw_dir)
    masks = io.open_zarr(raw_dir / "truth" / "defects.zarr", "true defects")
    flags = np.array([np.bitwise_or.reduce(np.asarray(masks[z].read().result()).ravel())
                      & SECTION_DEFECTS for z in range(info.sections)], np.uint8)
    queue = iter([z for z in range(info.sections) if not flags[z]])

    def lines(_image: np.ndarray, covered: np.ndarray) -> np.ndarray:
        z = next(queue)
        _, src, _ = stitched_tissue(raw_dir, em_dir, z)
        m = evaluate.truth_in_stitched_frame(np.asarray(masks[z].read().result()), src)
        return np.where(covered, m & np.uint8(LINE_DEFECTS), 0).astype(np.uint8)

    with mock.patch.object(defects_, "classify_sections", lambda q: flags.copy()), \
            mock.patch.object(defects_, "line_defects", lines):
        yield


def nearest_fill(volume: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """A `restore.fill_from_neighbours` stand-in: each bad voxel takes the value of the nearer
    good voxel along z at its place (the one below on a tie), none where there is none."""
    nz = volume.shape[0]
    z = np.arange(nz)[:, None, None]
    below, above = restore._nearest_good(bad, False), restore._nearest_good(bad, True)
    use_below = (below >= 0) & ((above >= nz) | (z - below <= above - z))
    src = np.clip(np.where(use_below, below, above), 0, nz - 1)
    out = volume.copy()
    fix = bad & ((below >= 0) | (above < nz))
    out[fix] = np.take_along_axis(volume, src, axis=0)[fix]
    return out


def prepare_variant(raw_dir: Path, em_dir: Path, variant: str) -> None:
    """`connectome prepare` with one part replaced (`variant`), then the truth in its frame."""
    if variant == "true maps":
        ctx: Any = mock.patch.object(elastic, "align_stack", oracle_align(raw_dir, em_dir))
    elif variant == "stitch only":
        ctx = mock.patch.object(elastic, "align_stack", identity_align)
    elif variant == "true masks":
        ctx = true_defects(raw_dir, em_dir)
    elif variant == "nearest fill":
        ctx = mock.patch.object(restore, "fill_from_neighbours", nearest_fill)
    else:
        raise ValueError(f"unknown variant {variant!r}")
    with ctx:
        prepare.prepare(raw_dir, em_dir)
    truth_frame.write_truth_in_frame(raw_dir, em_dir)


def synth_raw(out: Path, size: str, seed: int, defects: bool,
              missing_runs: tuple[int, ...] = raw_synth.RawConfig.missing_runs) -> None:
    """A raw directory as `synth-em --preset raw` writes it, optionally without defects or
    with other runs of missing sections."""
    x, y, z = (int(v) for v in size.split(","))
    cfg = raw_synth.RawConfig(seed=seed, missing_runs=missing_runs) if defects else \
        raw_synth.RawConfig(seed=seed, folds=0, cracks=0, blurred=0, missing_runs=())
    rawdir.write_synthetic_raw(out, synth.SynthConfig((z, y, x), seed=seed), cfg)


def one_seed(work: Path, size: str, seed: int, workers: int,
             variants: dict[str, list[str]],
             missing_runs: tuple[int, ...] | None = None) -> dict[str, Any]:
    steps = Steps(work)
    out: dict[str, Any] = {"seed": seed, "times_s": {}}
    raws = {"defects": work / "raw", "no defects": work / "raw_nodefects"}
    if missing_runs is None:  # the preset, as a user makes it
        steps.run("synth", raws["defects"] / "raw.json", lambda: _cli(
            "synth-em", str(raws["defects"]), "--size", size, "--preset", "raw", "--seed",
            str(seed)))
    else:
        steps.run("synth", raws["defects"] / "raw.json",
                  lambda: synth_raw(raws["defects"], size, seed, True, missing_runs))
    steps.run("synth no defects", raws["no defects"] / "raw.json",
              lambda: synth_raw(raws["no defects"], size, seed, False))
    ems: dict[str, Path] = {"clean": raws["defects"] / "truth" / "undeformed"}
    for kind, raw in raws.items():
        tag = "" if kind == "defects" else "nd_"
        em = work / f"{tag}em_front" if tag else work / "em_front"
        steps.run(f"prepare {tag}front", em / "truth" / "known.zarr",
                  lambda raw=raw, em=em: _cli("prepare", str(raw), str(em)))
        ems[f"{kind}: front end"] = em
        for v in variants[kind]:
            em_v = work / f"{tag}em_{v.replace(' ', '_')}"
            steps.run(f"prepare {tag}{v}", em_v / "truth" / "known.zarr",
                      lambda raw=raw, em_v=em_v, v=v: prepare_variant(raw, em_v, v))
            ems[f"{kind}: {v}"] = em_v
    for name, em in ems.items():
        slug = name.replace(": ", "_").replace(" ", "_")
        run = work / ("run_front_end" if name == "defects: front end" else
                      "run_clean" if name == "clean" else f"run_{slug}")
        out["times_s"][name] = steps.run(f"reconstruct {name}", run / "metrics.json",
                                         lambda em=em, run=run: _cli(
            "reconstruct", str(em), str(run), "--workers", str(workers)))
        m = json.loads((run / "metrics.json").read_text())["pipeline"]
        out[name] = {k: m[k] for k in KEYS}
        if name != "clean":
            known = np.asarray(io.open_zarr(em / "truth" / "known.zarr", "known")
                               .read().result())
            out[name]["truth_voxels_known"] = float(known.mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="256,256,32", help="x,y,z voxels")
    ap.add_argument("--seeds", default="31")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--work", type=Path, required=True, help="folder for the volumes and runs")
    ap.add_argument("--variants", default="true maps,true masks,stitch only",
                    help="variants of the front end on the raw volume")
    ap.add_argument("--nd-variants", default="true maps",
                    help="variants on the same volume without defects (its front end always)")
    ap.add_argument("--missing-runs", default="",
                    help="lengths of the runs of missing sections (default: the preset's)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    runs = tuple(int(v) for v in args.missing_runs.split(",")) if args.missing_runs else None
    start = load_1min()
    known = {"true maps", "true masks", "stitch only", "nearest fill"}
    variants = {"defects": [v for v in args.variants.split(",") if v],
                "no defects": [v for v in args.nd_variants.split(",") if v]}
    for v in variants["defects"] + variants["no defects"]:
        if v not in known:
            ap.error(f"--variants: unknown variant {v!r} (one of {', '.join(sorted(known))})")
    results = [one_seed(args.work / f"seed{s}", args.size, int(s), args.workers, variants,
                        runs) for s in args.seeds.split(",")]
    rows = []
    for r in results:
        for name, m in r.items():
            if isinstance(m, dict) and "nerl" in m:
                rows.append({"seed": r["seed"], "variant": name, "nerl": round(m["nerl"], 3),
                             "synapse_f1": round(m["synapse_f1"], 3),
                             "voi_split": round(m["voi_split"], 3),
                             "voi_merge": round(m["voi_merge"], 3),
                             "segments": m["n_segments"]})
    report = {"size_xyz": args.size, "missing_runs": args.missing_runs or "preset",
              "results": results, "load_1min": [start, load_1min()]}
    print(pd.DataFrame(rows).to_string(index=False))
    print("load", report["load_1min"])
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
