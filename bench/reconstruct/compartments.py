"""Postsynaptic compartments: how often a matched synapse's `post_compartment` is right,
and how often a cell's axon initial segment is put on its true axon.

Runs `connectome reconstruct`'s pipeline on synthetic volumes and scores, on the synapses
matched to ground truth, the compartments the pipeline wrote beside a baseline computed
from the same run's tables: a simpler rule under which a segment without a soma in the
volume is all "axon" if it makes a synapse, else all "unknown" (synapses onto segments
with a soma get the same answer under both rules).

On the true segmentations of the same volumes (so segmentation errors do not count),
it also checks every cell with a soma whose true AIS its skeleton reaches: is the AIS
`skeleton.label_compartments` marks on the cell's true AIS or axon? The baseline takes the
branch with most presynaptic sites for the axon (`axon_by_presynaptic_sites`).

    uv run python bench/reconstruct/compartments.py --seeds 1,2,3,4,10,11,12,13
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from scipy.spatial import cKDTree

from connectome_query.reconstruct import (
    io,
    metrics,
    pipeline,
    skeleton,
    synth,
    synthetic_em,
    training,
)
from connectome_query.schema.vocabulary import Compartment

VS = (40.0, 16.0, 16.0)


def matched(run: Path, truth: dict) -> list[tuple[int, int]]:
    """(predicted, true) synapse row pairs matched with both partners right."""
    seg = io.open_zarr(run / "segmentation.zarr").read().result()
    syn = pd.read_parquet(run / "synapses.parquet")
    ts_ = truth["synapses"]
    to_gt = metrics.segment_to_truth(truth["segmentation"], seg)
    pre = np.array([to_gt.get(int(s), -1) for s in syn["pre_segment_id"]], np.int64)
    post = np.array([to_gt.get(int(s), -1) for s in syn["post_segment_id"]], np.int64)
    true_pre = ts_["pre_segment_id"].to_numpy()
    true_post = ts_["post_segment_id"].to_numpy()
    return metrics._match(syn[["x", "y", "z"]].to_numpy(float),
                          ts_[["x", "y", "z"]].to_numpy(float), 250.0,
                          lambda i, j: (pre[i] == true_pre[j]) & (post[i] == true_post[j]))


def axon_by_presynaptic_sites(sk: skeleton.Skel, soma: tuple[np.ndarray, float],
                              presyn_xyz: np.ndarray) -> np.ndarray:
    """Baseline: the AIS by presynaptic sites (True per vertex). The axon is the branch
    at the soma nearest to most of the cell's presynaptic sites, with no site the
    thinnest by median radius; its first AIS length is the AIS."""
    in_soma, branch, path = skeleton.soma_branches(sk, soma)
    rest = np.nonzero(~in_soma)[0]
    ais = np.zeros(len(sk.vertices), bool)
    if len(rest) == 0:
        return ais
    counts: dict[int, int] = {}
    if len(presyn_xyz):
        _, near = cKDTree(sk.vertices[rest]).query(presyn_xyz)
        for k in np.atleast_1d(near):
            b = int(branch[rest[int(k)]])
            counts[b] = counts.get(b, 0) + 1
    if counts:
        axon = max(counts, key=lambda b: counts[b])
    else:
        axon = min(np.unique(branch[rest]).tolist(),
                   key=lambda b: float(np.median(sk.radius[branch == b])))
    ax = rest[branch[rest] == axon]
    reach = path[ax][np.isfinite(path[ax])]
    if len(reach):
        ais[ax[path[ax] - reach.min() <= skeleton.AIS_LENGTH_NM]] = True
    return ais


def ais_on_true_cells(cfg: synth.SynthConfig) -> list[dict]:
    """Per cell with a soma whose skeleton reaches its true AIS: the share of the
    vertices marked AIS that lie in its true AIS or axon (or soma), ours and baseline
    (true segmentation; the cell's true presynaptic sites for the baseline)."""
    plan = synth.make_plan(cfg)
    slab = synth.render(plan)
    skels = skeleton.skeletonize(slab.labels, cfg.voxel_size_zyx)
    vs = np.array(cfg.voxel_size_zyx[::-1])
    out = []
    for sid, soma in skeleton.find_somata(slab.labels, cfg.voxel_size_zyx).items():
        sk = skels.get(sid)
        if sk is None:
            continue
        ix = np.clip(np.round(sk.vertices / vs).astype(int), 0,
                     np.array(slab.labels.shape[::-1]) - 1)
        true = slab.compartments[ix[:, 2], ix[:, 1], ix[:, 0]]
        if not (true == Compartment.AIS).any():
            continue
        pre = plan.synapses[plan.synapse_pre == sid, :3][:, ::-1]  # zyx -> xyz nm
        ours = skeleton.label_compartments(sk, soma, pre) == Compartment.AIS
        base = axon_by_presynaptic_sites(sk, soma, pre)
        right = np.isin(true, [Compartment.AIS, Compartment.AXON, Compartment.SOMA])
        out.append({"seed": cfg.seed, "cell": int(sid),
                    "class": plan.neuron_class.get(int(sid), "?"),
                    "ours": float(right[ours].mean()) if ours.any() else 0.0,
                    "baseline": float(right[base].mean()) if base.any() else 0.0})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=64, help="cube edge in voxels")
    ap.add_argument("--seeds", default="1,2,3,4,10,11,12,13")
    ap.add_argument("--out", type=Path, default=Path("bench/reconstruct/compartments.json"))
    args = ap.parse_args()
    con = Console(width=120)
    rows = []
    classes: list[float | None] = []  # cell-class accuracy over the segments with a soma
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = work / "model.joblib"
        io.save_model(model, training.default_model(VS, seed=0))
        for seed in (int(s) for s in args.seeds.split(",")):
            em, run = work / f"em{seed}", work / f"run{seed}"
            synthetic_em.write_synthetic_em(
                em, synth.SynthConfig((args.size,) * 3, VS, "clean", seed))
            pipeline.reconstruct(em, run, model)
            info = io.read_volume_info(em)
            truth = io.read_truth(em, tuple(int(n) for n in info["shape_zyx"]))
            assert truth is not None
            syn = pd.read_parquet(run / "synapses.parquet")
            segs = pd.read_parquet(run / "segments.parquet")
            got = json.loads((run / "metrics.json").read_text())
            classes.append(got.get("pipeline", {}).get("class_accuracy_somata"))
            no_soma = set(segs.loc[segs["soma_x"].isna(), "segment_id"].astype(int))
            makes = set(syn["pre_segment_id"].astype(int))
            for i, j in matched(run, truth):
                post = int(syn["post_segment_id"].iloc[i])
                ours = str(syn["post_compartment"].iloc[i])
                old = ("axon" if post in makes else "unknown") if post in no_soma else ours
                rows.append({"seed": seed, "true": str(truth["synapses"]
                                                        ["post_compartment"].iloc[j]),
                             "ours": ours, "baseline": old, "post_has_soma":
                             post not in no_soma})
    if not rows:
        raise SystemExit(f"--size {args.size}: no synapse in seeds {args.seeds} matched the "
                         "truth, so there is nothing to score; use a larger --size (64 or more)")
    df = pd.DataFrame(rows)
    tab = Table(title=f"Post compartments of matched synapses, {args.size}^3 clean volumes")
    for c in ("seed", "matched", "onto segments without soma", "ours", "baseline"):
        tab.add_column(c, justify="right")
    per_seed = []
    for seed, g in df.groupby("seed"):
        a, b = float((g.ours == g.true).mean()), float((g.baseline == g.true).mean())
        per_seed.append({"seed": int(seed), "matched": len(g), "without_soma":
                         int((~g.post_has_soma).sum()), "ours": a, "baseline": b})
        tab.add_row(str(seed), str(len(g)), str(int((~g.post_has_soma).sum())), f"{a:.3f}",
                    f"{b:.3f}")
    ours, base = float((df.ours == df.true).mean()), float((df.baseline == df.true).mean())
    tab.add_row("pooled", str(len(df)), str(int((~df.post_has_soma).sum())), f"{ours:.3f}",
                f"{base:.3f}")
    con.print(tab)
    confusion = pd.crosstab(df.true, df.ours).to_dict()
    con.print(f"ours / baseline accuracy: {ours:.3f} / {base:.3f}; confusion (ours by true): "
              f"{confusion}")
    cells = [c for seed in (int(s) for s in args.seeds.split(","))
             for c in ais_on_true_cells(synth.SynthConfig((args.size,) * 3, VS, "clean",
                                                          seed))]
    found = {k: sum(c[k] >= 0.8 for c in cells) for k in ("ours", "baseline")}
    known = [c for c in classes if c is not None]
    class_mean = float(np.mean(known)) if known else float("nan")
    con.print(f"cell-class accuracy (segments with a soma), mean over volumes: "
              f"{class_mean:.3f}")
    con.print(f"true segmentations: AIS put on the true axon (>= 80% of its vertices) in "
              f"{found['ours']} of {len(cells)} cells (baseline {found['baseline']})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"size": args.size, "per_seed": per_seed,
                                    "pooled_ours": ours, "pooled_baseline": base,
                                    "confusion_ours_by_true": confusion,
                                    "ais_on_true_cells": cells, "cells_found": found,
                                    "class_accuracy_somata": classes,
                                    "class_accuracy_mean": class_mean},
                                   indent=2) + "\n")


if __name__ == "__main__":
    main()
