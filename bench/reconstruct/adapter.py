"""Benchmark: the style-A segmenter on held-out style-B volumes, as is, after a cheap intensity fix,
after the adapter, and beside a segmenter trained on B's truth (the ceiling).

    uv run python bench/reconstruct/adapter.py --size 32,128,128 --seeds 101,102

Style-B volumes (`synth-em --style b`) with seeds disjoint from the adapter's training volumes
are segmented (affinity network, seeded watershed, synapses from the cleft channel) from:
- the image as is, with the shipped (style-A) affinity network;
- histogram matching + CLAHE (scikit-image): each section's contrast equalised locally, then its
  grey levels matched to a style-A reference volume (the cheap baseline);
- the same after inverting the grey levels (a cheap fix that is told B's contrast is inverted);
- the image translated B -> A by each adapter given (default `reconstruct/models/adapter_b.npz`);
- the image as is, with an affinity network fine-tuned from the shipped one on style-B volumes
  with truth (the ceiling; `--ceiling-steps` steps, fewer than the shipped network's 900).
Scores: NERL, VOI, synapse F1 (partners right), synapse counts pooled over the volumes. Also timed:
translation voxels/s, the cheap baseline's voxels/s, the ceiling's training; load average at
start and end. Prints a rich table and writes JSON.
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
    affinity_net,
    io,
    synth,
    synthetic_em,
    training,
)
from connectome_query.reconstruct.adapt import model

VS = (40.0, 16.0, 16.0)
DEFAULT_ADAPTER = training.DEFAULT_NET.parent / "adapter_b.npz"
CEILING_SEED = 4_200_001  # style-B training volumes of the ceiling network
REFERENCE_SEED = 4_300_001  # the style-A volume the cheap baseline matches histograms to



def hist_clahe(img: np.ndarray, reference: np.ndarray, invert: bool = False) -> np.ndarray:
    """Per section CLAHE, then the volume's grey levels matched to `reference`'s."""
    from skimage import exposure

    src = 255 - img if invert else img
    eq = np.stack([exposure.equalize_adapthist(s, clip_limit=0.01) for s in src])
    matched = exposure.match_histograms(eq, reference.astype(np.float64))
    return np.clip(np.rint(matched), 0, 255).astype(np.uint8)



def train_ceiling(shape: tuple[int, int, int], n: int, steps: int,
                  init: affinity_net.AffinityNet) -> tuple[affinity_net.AffinityNet, float]:
    vols = []
    for k in range(n):
        s = synth.synthesize(synth.SynthConfig(shape, VS, ("clean", "noisy")[k % 2],
                                               CEILING_SEED + k, style="b"))
        vols.append((s.image, s.labels, s.clefts != 0))
    t = time.perf_counter()
    net = affinity_net.train(vols, steps, seed=0, init=init, voxel_size_zyx=VS,
                             trained_on=f"fine-tuned on {n} style-B volumes")
    return net, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", default="32,128,128", help="Z,Y,X of each held-out volume")
    ap.add_argument("--seeds", default="101,102", help="held-out style-B seeds")
    ap.add_argument("--preset", default="clean", choices=["clean", "noisy"])
    ap.add_argument("--adapter", type=Path, action="append",
                    help="adapter weights (repeat to compare several; default: shipped)")
    ap.add_argument("--ceiling-steps", type=int, default=300)
    ap.add_argument("--ceiling-volumes", type=int, default=4)
    ap.add_argument("--out", type=Path, default=Path("bench/reconstruct/adapter.json"))
    args = ap.parse_args()
    con = Console(width=150)
    load0 = load_1min()
    shape = tuple(int(v) for v in args.size.split(","))
    net_a = io.load_net(training.DEFAULT_NET)
    paths = args.adapter or [DEFAULT_ADAPTER]
    adapters = {p.stem: io.load_adapter(p) for p in paths}
    reference = synth.synthesize(synth.SynthConfig(shape, VS, args.preset,  # type: ignore[arg-type]
                                                   REFERENCE_SEED)).image
    net_b, t_ceiling = None, 0.0
    if args.ceiling_steps > 0:  # 0: no ceiling row (quick comparisons of adapters)
        con.print(f"training the ceiling network ({args.ceiling_steps} steps) ...")
        net_b, t_ceiling = train_ceiling(shape, args.ceiling_volumes,  # type: ignore[arg-type]
                                         args.ceiling_steps, net_a)
    rows: dict[str, list[dict[str, Any]]] = {}
    t_translate, t_cheap, voxels = 0.0, 0.0, 0
    for adapter in adapters.values():  # compile outside the timing
        model.translate(adapter, np.zeros((1, 64, 64), np.uint8))
    with tempfile.TemporaryDirectory() as tmp:
        for seed in (int(s) for s in args.seeds.split(",")):
            em = Path(tmp) / f"b{seed}"
            synthetic_em.write_synthetic_em(em, synth.SynthConfig(shape, VS, args.preset, seed,  # type: ignore[arg-type]
                                                        style="b"))
            img = io.read_image(em, io.read_volume_info(em))
            truth = io.read_truth(em, img.shape)
            assert truth is not None
            voxels += img.size
            t = time.perf_counter()
            cheap = hist_clahe(img, reference)
            t_cheap += time.perf_counter() - t
            translated = {}
            for name, adapter in adapters.items():
                t = time.perf_counter()
                translated[name] = model.translate(adapter, img)
                t_translate += (time.perf_counter() - t) / len(adapters)
            images = {
                "A net, B image as is": (net_a, img),
                "A net, histogram matching + CLAHE": (net_a, cheap),
                "A net, inverted + histogram matching + CLAHE":
                    (net_a, hist_clahe(img, reference, invert=True)),
                **{f"A net, adapter (B -> A) {name}": (net_a, translated[name])
                   for name in adapters},
            }
            if net_b is not None:
                images["ceiling: net fine-tuned on B truth"] = (net_b, img)
            for name, (net, image) in images.items():
                quality = segmentation_quality(net, image, truth, VS)
                rows.setdefault(name, []).append({"seed": seed, **quality})
                con.print(f"seed {seed}: {name}: {rows[name][-1]}")
    tab, summary = quality_table(
        rows, f"Style-B volumes {args.size} (z,y,x), {args.preset}, seeds {args.seeds}")
    con.print(tab)
    load1 = load_1min()
    timing = {"translation_voxels_per_s": voxels / t_translate,
              "hist_clahe_voxels_per_s": voxels / t_cheap,
              "ceiling_training_s": t_ceiling, "ceiling_steps": args.ceiling_steps,
              "adapter_training_s": {n: a.meta.get("train_seconds_this_run")
                                     for n, a in adapters.items()},
              "adapter_steps": {n: a.meta.get("steps") for n, a in adapters.items()},
              "load_start": load0, "load_end": load1}
    con.print(f"translation {timing['translation_voxels_per_s'] / 1e6:.2f} Mvox/s, histogram "
              f"matching + CLAHE {timing['hist_clahe_voxels_per_s'] / 1e6:.2f} Mvox/s (ratio "
              f"{timing['translation_voxels_per_s'] / timing['hist_clahe_voxels_per_s']:.2f}); "
              f"ceiling training {t_ceiling:.0f} s; load {load0:.1f} -> {load1:.1f}")
    args.out.write_text(json.dumps({"size": args.size, "seeds": args.seeds,
                                    "preset": args.preset, "summary": summary, "rows": rows,
                                    "timing": timing,
                                    "adapter_meta": {n: a.meta for n, a in adapters.items()}},
                                   indent=2, default=float) + "\n")
    con.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
