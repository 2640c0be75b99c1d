"""Postsynaptic compartments: how often a matched synapse's `post_compartment` is right.

Runs `connectome reconstruct`'s pipeline on synthetic volumes and scores, on the synapses
matched to ground truth, the compartments the pipeline wrote beside a baseline computed
from the same run's tables: the rule used until 2026-12-02, under which a segment
without a soma in the volume was all "axon" if it made a synapse, else all "unknown"
(synapses onto segments with a soma get the same answer under both rules).

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

from reconstruct import io, metrics, pipeline, synth

VS = (40.0, 16.0, 16.0)


def matched(run: Path, truth: dict) -> list[tuple[int, int]]:
    """(predicted, true) synapse row pairs matched with both partners right."""
    seg = io.open_zarr(run / "segmentation.zarr").read().result()
    syn = pd.read_parquet(run / "synapses.parquet")
    ts_ = truth["synapses"]
    to_gt = metrics.segment_to_truth(truth["segmentation"], seg)
    pre = np.array([to_gt.get(int(s), -1) for s in syn["pre_segment_id"]], np.int64)
    post = np.array([to_gt.get(int(s), -1) for s in syn["post_segment_id"]], np.int64)
    ok = ((pre[:, None] == ts_["pre_segment_id"].to_numpy()[None, :])
          & (post[:, None] == ts_["post_segment_id"].to_numpy()[None, :]))
    return metrics._match(syn[["x", "y", "z"]].to_numpy(float),
                          ts_[["x", "y", "z"]].to_numpy(float), ok, 250.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=64, help="cube edge in voxels")
    ap.add_argument("--seeds", default="1,2,3,4,10,11,12,13")
    ap.add_argument("--out", type=Path, default=Path("bench/reconstruct/compartments.json"))
    args = ap.parse_args()
    con = Console(width=120)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = work / "model.joblib"
        io.save_model(model, pipeline.default_model(VS, seed=0))
        for seed in (int(s) for s in args.seeds.split(",")):
            em, run = work / f"em{seed}", work / f"run{seed}"
            pipeline.synthesize(em, synth.SynthConfig((args.size,) * 3, VS, "clean", seed))
            pipeline.reconstruct(em, run, model)
            info = pipeline.read_volume_info(em)
            truth = pipeline.read_truth(em, tuple(int(n) for n in info["shape_zyx"]))
            assert truth is not None
            syn = pd.read_parquet(run / "synapses.parquet")
            segs = pd.read_parquet(run / "segments.parquet")
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
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"size": args.size, "per_seed": per_seed,
                                    "pooled_ours": ours, "pooled_baseline": base,
                                    "confusion_ours_by_true": confusion}, indent=2) + "\n")


if __name__ == "__main__":
    main()
