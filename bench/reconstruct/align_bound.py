"""How close to the undeformed frame any aligner that reads only the images can bring a
`raw` stack: a lower bound on the strict alignment residual from translation alone.

    uv run python bench/reconstruct/align_bound.py --size 64,256,256 --seeds 3,11 \
        --depths 16,32,64,256

Neurites cross sections obliquely, so the tissue's mean position moves from section to
section (its drift). A section's rigid shift moves every pixel of it alike, and so does the
drift between two sections on average: in the images the two add up and nothing tells them
apart, so what an aligner can know of the shifts is their sum along z (the chain). The shifts
are independent from section to section (sd `RawConfig.section_shift`, 8 px), the drift
changes slowly; the best estimate of every shift from the chain (the Gaussian posterior mean,
knowing both statistics exactly and the chain without error: more than any aligner knows)
still leaves an error, and the strict residual (each section's position minus the stack's
mean) cannot be smaller. The drift is measured: the aligner (`align.elastic`, its own drift
removal off) on the undeformed volume, where the true maps are the identity, follows the
tissue, and each section's mean displacement is the drift as its flows see it; its steps'
autocovariance (pooled over seeds and axes) gives the drift's statistics for a stack of any
depth.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from connectome_query.reconstruct import synth
from connectome_query.reconstruct.align import drift as drift_
from connectome_query.reconstruct.align import elastic
from connectome_query.reconstruct.synth.raw import RawConfig

LAGS = 24
"""Step autocovariance lags kept (tapered linearly to 0 at this lag)."""


def drift(shape_zyx: tuple[int, int, int], seed: int) -> np.ndarray:
    """(z, 2) mean displacement of each section's map when the undeformed volume is aligned."""
    nz, ny, nx = shape_zyx
    image = synth.synthesize(synth.SynthConfig(shape_zyx, seed=seed)).image
    stack = image.astype(np.float32) / 255
    ones = np.ones(nz, bool)
    follow = elastic.AlignConfig(drift=drift_.DriftConfig(step=0, shape_step=0))
    maps = elastic.align_stack(lambda z: stack[z], lambda z: np.zeros((ny, nx), bool), nz,
                               ones, ones, (ny, nx), follow)
    return np.asarray((maps.nodes - maps.nodes[:1]).mean(axis=(1, 2)))


def step_autocovariance(drifts: list[np.ndarray]) -> np.ndarray:
    """Autocovariance of the drift's steps at lags 0..LAGS-1, pooled, tapered."""
    steps = [np.diff(d, axis=0) for d in drifts]
    acov = np.array([np.mean(np.concatenate([(s[:len(s) - k] * s[k:]).ravel() for s in steps]))
                     for k in range(LAGS)])
    return acov * (1 - np.arange(LAGS) / LAGS)


def bound(acov: np.ndarray, depth: int, shift_sd: float) -> dict[str, float]:
    """Expected strict translation residual (px, both axes) of the best estimate of the
    shifts of `depth` sections, and of taking the chain as it is (no estimate of the drift)."""
    n = depth - 1
    lag = np.abs(np.subtract.outer(np.arange(n), np.arange(n)))
    steps = np.where(lag < len(acov), acov[np.minimum(lag, len(acov) - 1)], 0.0)
    c_drift = drift_.summed_steps(steps)
    c_shift = shift_sd**2 * np.eye(depth)
    posterior = c_shift - c_shift @ np.linalg.solve(c_shift + c_drift, c_shift)
    centre = np.eye(depth) - 1.0 / depth
    best = float(np.trace(centre @ posterior @ centre)) / depth
    chain = float(np.trace(centre @ c_drift @ centre)) / depth
    return {"best_rms_px": float(np.sqrt(2 * best)), "chain_rms_px": float(np.sqrt(2 * chain))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="64,256,256", help="z,y,x of the undeformed volumes")
    p.add_argument("--seeds", default="3,11")
    p.add_argument("--depths", default="16,32,64,256", help="stack depths to bound")
    p.add_argument("--json", type=Path, default=Path("bench/reconstruct/align_bound.json"))
    a = p.parse_args()
    z, y, x = (int(v) for v in a.size.split(","))
    drifts = [drift((z, y, x), int(s)) for s in a.seeds.split(",")]
    acov = step_autocovariance(drifts)
    shift_sd = RawConfig().section_shift
    out = {"size_zyx": [z, y, x], "seeds": a.seeds, "section_shift_sd_px": shift_sd,
           "drift_step_sd_px": float(np.sqrt(acov[0])),
           "drift_step_autocorrelation": [round(float(v / acov[0]), 3) for v in acov[1:6]],
           "drift_range_px": [round(float(np.ptp(d, axis=0).max()), 2) for d in drifts],
           "bound": {}}
    for depth in (int(v) for v in a.depths.split(",")):
        out["bound"][depth] = b = bound(acov, depth, shift_sd)
        print(f"{depth} sections: best possible strict translation residual "
              f"{b['best_rms_px']:.2f} px RMS (chain as it is: {b['chain_rms_px']:.2f})")
    print(json.dumps({k: v for k, v in out.items() if k != "bound"}))
    a.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
