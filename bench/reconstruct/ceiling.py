"""Where reconstruction quality is lost: each stage scored with perfect inputs beside ours.

    uv run python bench/reconstruct/ceiling.py --size 64 --seeds 1,2,3 --preset clean

For each synthetic volume (truth known) it scores:
- segmentation from the affinity network's predictions (the pipeline as shipped; clefts
  from the voxel classifier);
- the same segmenter on the *true* affinities (the segmenter's ceiling);
- synapse detection from our cleft probability on our segmentation (as shipped);
- synapse detection from our cleft probability on the *true* segmentation (cleft
  prediction and detection alone, without segmentation errors);
- synapse detection from the *true* clefts on the *true* segmentation (the detection and
  partner-assignment ceiling: only the pre/post decision and cleft splitting can fail).

The gaps tell which stage to work on. Prints a rich table and writes JSON.
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
from rich.table import Table

from connectome_query.reconstruct import (
    affinity_net,
    boundary,
    io,
    scoring,
    segment,
    synapses,
    synth,
    synthetic_em,
    training,
)


def score_volume(em: Path, model: boundary.AffinityModel, net: affinity_net.AffinityNet,
                 vs: tuple[float, float, float]) -> dict[str, Any]:
    """Scores of one EM directory with predicted and with perfect inputs."""
    info = io.read_volume_info(em)
    img = io.read_image(em, info)
    truth = io.read_truth(em, img.shape)
    assert truth is not None
    gt = truth["segmentation"]
    cp = em / "truth" / "clefts.zarr"
    clefts = io.read_block(io.open_zarr(cp, "clefts"), (slice(None),) * 3, cp, "clefts")
    t = time.perf_counter()
    cleft_prob = boundary.probabilities(model, img, vs)[boundary.CLS_CLEFT]
    affs, _ = affinity_net.predict(net, img, augment=True)
    t_pred = time.perf_counter() - t
    seg = segment.seeded_segmentation(affs, vs)
    seg_true = segment.seeded_segmentation(boundary.true_affinities(gt), vs)
    ours = scoring.segmentation_scores(seg, truth, vs)
    ceil = scoring.segmentation_scores(seg_true, truth, vs)
    syn = synapses.detect(cleft_prob, seg, img, vs)
    syn["post_compartment"] = "unknown"
    syn_pc = synapses.detect(cleft_prob, gt, img, vs)
    syn_pc["post_compartment"] = "unknown"
    syn_true = synapses.detect((clefts != 0).astype(np.float32), gt, img, vs)
    syn_true["post_compartment"] = "unknown"
    s_ours = scoring.synapse_metrics(seg, syn, truth)
    s_pc = scoring.synapse_metrics(gt, syn_pc, truth)
    s_ceil = scoring.synapse_metrics(gt, syn_true, truth)
    return {"em": em.name, "predict_s": t_pred,
            "nerl": ours["nerl"], "voi_split": ours["voi_split"],
            "voi_merge": ours["voi_merge"],
            "nerl_true_affinities": ceil["nerl"], "voi_true_affinities": ceil["voi"],
            "synapse_f1": s_ours["synapse_f1"],
            "synapse_location_f1": s_ours["synapse_location_f1"],
            "synapse_f1_pred_clefts_true_seg": s_pc["synapse_f1"],
            "synapse_location_f1_pred_clefts_true_seg": s_pc["synapse_location_f1"],
            "synapse_f1_true_clefts_true_seg": s_ceil["synapse_f1"],
            "synapse_location_f1_true_clefts": s_ceil["synapse_location_f1"],
            "synapses_true": s_ours["synapses_true"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=64, help="cube edge in voxels")
    ap.add_argument("--seeds", default="1,2,3", help="comma list of volume seeds")
    ap.add_argument("--preset", default="clean", choices=["clean", "noisy"])
    ap.add_argument("--out", type=Path, default=Path("bench/reconstruct/ceiling.json"))
    ap.add_argument("--net", type=Path, default=training.DEFAULT_NET,
                    help="affinity-network weights")
    args = ap.parse_args()
    vs = (40.0, 16.0, 16.0)
    con = Console(width=160)
    t = time.perf_counter()
    model = training.default_model(vs, 0)
    net = io.load_net(args.net)
    t_model = time.perf_counter() - t
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for s in (int(x) for x in args.seeds.split(",") if x.strip()):
            em = Path(tmp) / f"em{s}"
            n = args.size
            synthetic_em.write_synthetic_em(em, synth.SynthConfig((n, n, n), vs, args.preset, s))
            rows.append({"seed": s, **score_volume(em, model, net, vs)})
    tab = Table(title=f"Quality with predicted vs perfect inputs ({args.size}^3, "
                      f"{args.preset})")
    cols = [("seed", "seed"), ("NERL", "nerl"), ("NERL true affs", "nerl_true_affinities"),
            ("VOI split", "voi_split"), ("VOI merge", "voi_merge"),
            ("syn F1", "synapse_f1"), ("syn loc F1", "synapse_location_f1"),
            ("syn F1 true seg", "synapse_f1_pred_clefts_true_seg"),
            ("syn loc F1 true seg", "synapse_location_f1_pred_clefts_true_seg"),
            ("syn F1 true clefts+seg", "synapse_f1_true_clefts_true_seg"),
            ("syn loc F1 true clefts", "synapse_location_f1_true_clefts"),
            ("synapses", "synapses_true")]
    for c, _ in cols:
        tab.add_column(c, justify="right")
    for r in rows:
        tab.add_row(*[str(r[k]) if isinstance(r[k], int) else f"{r[k]:.3f}" for _, k in cols])
    means = {k: float(np.mean([r[k] for r in rows])) for _, k in cols[1:]}
    tab.add_row("mean", *[f"{means[k]:.3f}" for _, k in cols[1:]])
    con.print(tab)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"size": args.size, "preset": args.preset,
                                    "model_s": t_model, "rows": rows, "means": means},
                                   indent=2))
    con.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
