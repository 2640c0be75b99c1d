"""Stitching seam error of the tile-position fit, beside the previous fit, on `raw` volumes.

    uv run python bench/reconstruct/seams.py --seeds 23,29,31

Each seed: a synthetic volume through the `raw` preset (`synth.raw`), every section stitched
twice: ours (`stitch.robust_lstsq`, Huber-weighted least squares, false matches beyond
`GROSS_FIT_RESIDUAL` dropped) and the baseline, the rule it replaced (plain least squares,
every coordinate missing the fit by more than 1 px dropped, refit, three rounds). Seam error:
distance between the true section positions two tiles show at a shared pixel
(`evaluate.seam_error`), RMS / p99 / max px over the volume's non-missing sections.
"""

from __future__ import annotations

import argparse
import json
import os
from unittest import mock

import numpy as np

from connectome_query.reconstruct import synth
from connectome_query.reconstruct.align import evaluate, stitch
from connectome_query.reconstruct.synth import raw


def hard_rejection_lstsq(a: np.ndarray, b: np.ndarray, n_match: int) -> np.ndarray:
    """The baseline: drop match rows missing the fit by more than 1 px, refit (3 rounds)."""
    keep = np.ones(len(b), bool)
    for _ in range(3):
        sol = np.linalg.lstsq(a[keep], b[keep], rcond=None)[0]
        res = np.abs(a @ sol - b)
        res[n_match:] = 0.0
        bad = keep & (res > 1.0)
        if not bad.any():
            break
        keep &= ~bad
    return sol


def seams(shape: tuple[int, int, int], seed: int) -> dict[str, dict[str, float]]:
    image = synth.synthesize(synth.SynthConfig(shape, seed=seed)).image
    cfg = raw.RawConfig(seed=seed)
    plan = raw.plan_raw(image.shape, cfg)
    made = [raw.raw_section(plan, z, image[z]) for z in range(shape[0])]
    layout = stitch.Layout(cfg.grid, plan.tile_shape, cfg.overlap, shape[1:])
    flat = stitch.flat_field([m[0] for m in made])

    def run() -> dict[str, float]:
        s = [evaluate.stitched_sources(stitch.stitch_section(m[0], layout, flat, z), layout,
                                       plan, z)[1]
             for z, m in enumerate(made) if z not in plan.missing]
        return {k: round(v, 2) for k, v in evaluate.seam_error(s).items()}

    ours = run()
    with mock.patch.object(stitch, "robust_lstsq", hard_rejection_lstsq):
        baseline = run()
    return {"ours": ours, "baseline": baseline}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", default="16,256,256", help="z,y,x of each volume")
    p.add_argument("--seeds", default="23,29,31")
    a = p.parse_args()
    shape = tuple(int(v) for v in a.shape.split(","))
    start = os.getloadavg()[0]
    for seed in (int(v) for v in a.seeds.split(",")):
        print(f"seed {seed}: {json.dumps(seams(shape, seed))}", flush=True)  # type: ignore[arg-type]
    print(f"load average (1 min): {start:.2f} at start, {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
