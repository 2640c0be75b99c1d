"""How close to the undeformed frame any aligner that reads only the images can bring a
`raw` stack: a lower bound on the strict alignment residual from translation and linear
shape alone.

    uv run python bench/reconstruct/align_bound.py --size 64,256,256 --seeds 3,11 \
        --depths 16,32,64,256 --plan-seeds 3,11,17,23,29 --check

Neurites cross sections obliquely, so the tissue's mean position moves from section to
section (its drift). A section's rigid shift moves every pixel of it alike, and so does the
drift between two sections on average: in the images the two add up and nothing tells them
apart, so what an aligner can know of the shifts is their sum along z (the chain). The shifts
are independent from section to section (sd `RawConfig.section_shift`, 8 px), the drift
changes slowly; the best estimate of every shift from the chain (the Gaussian posterior mean,
knowing both statistics exactly and the chain without error: more than any aligner knows)
still leaves an error, and the strict residual (each section's position minus the stack's
mean) cannot be smaller. The same holds for each section's linear part (rotation, scale,
shear: the affine part of its map beyond the translation), which the tissue's drift has too
(neurites fanning out) and the sections' deformations have independently.

The drift is measured: the aligner (`align.elastic`, its own drift and trend removal off) on
the undeformed volume, where the true maps are the identity, follows the tissue, and each
section's map's translation and linear part are the drift as its flows see it; their steps'
autocovariance (pooled over seeds and axes or elements) gives the drift's statistics for a
stack of any depth. The sections' own linear parts are drawn from the generator
(`raw.section_deformation`, folds and cracks aside).

Missing sections (`--plan-seeds`: the 16-section trial volumes' plans): across a gap the chain
has one flow k sections long, and such a flow's mean differs from the sum of the k flows
between neighbours (measured in the same run on the undeformed volumes) beyond the drift
itself: that excess is an independent error on the link, and the bound is taken over the
sections the trial scores (not missing, not blurred). The linear part is bounded without
gaps (lower than with them).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import numpy as np

from connectome_query.reconstruct import synth
from connectome_query.reconstruct.align import drift as drift_
from connectome_query.reconstruct.align import elastic, flow
from connectome_query.reconstruct.align.warp import identity_nodes
from connectome_query.reconstruct.synth import raw
from connectome_query.reconstruct.synth.raw import RawConfig

LAGS = 24
"""Step autocovariance lags kept (tapered linearly to 0 at this lag)."""
MARGIN = 16
"""px: the trial scores pixels this far inside the section; the linear part's lever arm."""
GAP_LENGTHS = (2, 3)
"""Flows this many sections apart (a gap of 1 and of 2 missing sections)."""


def follow(stack: np.ndarray) -> elastic.Maps:
    """The aligner on `stack` (z, y, x float) with its drift and z-trend removal off."""
    nz, ny, nx = stack.shape
    ones = np.ones(nz, bool)
    cfg = elastic.AlignConfig(drift=drift_.DriftConfig(step=0, shape_step=0), z_trend_degree=0)
    return elastic.align_stack(lambda z: stack[z], lambda z: np.zeros((ny, nx), bool), nz,
                               ones, ones, (ny, nx), cfg)


def affine_parts(u: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares u ~ t + A (p - mean p) of displacements u (n, 2) at points (n, 2):
    (t (2,), A flattened (4,))."""
    design = np.column_stack([np.ones(len(points)), points - points.mean(axis=0)])
    coef, *_ = np.linalg.lstsq(design, u, rcond=None)
    return coef[0], coef[1:].T.ravel()


def map_parts(maps: elastic.Maps) -> tuple[np.ndarray, np.ndarray]:
    """(translation (z, 2), linear part (z, 4)) of each section's map, relative to the
    first section's."""
    ident = identity_nodes(maps.nodes.shape[1:3], maps.stride)
    points = ident.reshape(-1, 2)
    parts = [affine_parts((n - ident).reshape(-1, 2), points) for n in maps.nodes]
    t = np.stack([p[0] for p in parts])
    a = np.stack([p[1] for p in parts])
    return t - t[0], a - a[0]


def step_autocovariance(series: list[np.ndarray]) -> np.ndarray:
    """Autocovariance of the steps of series (z, k) at lags 0..LAGS-1, pooled over the
    series and their k columns, tapered."""
    steps = [np.diff(d, axis=0) for d in series]
    acov = np.array([np.mean(np.concatenate([(s[:len(s) - k] * s[k:]).ravel() for s in steps]))
                     for k in range(LAGS)])
    return acov * (1 - np.arange(LAGS) / LAGS)


def gap_excess(stack: np.ndarray, z_max: int) -> dict[int, float]:
    """Per gap length k: the mean square (px^2 a coordinate) by which the mean of a flow k
    sections long differs from the sum of the means of the k neighbour flows it spans."""
    cfg = elastic.AlignConfig()

    def mean_flow(a: int, b: int) -> np.ndarray:
        f = flow.section_flow(stack[a], stack[b], cfg.stride, cfg.patch, cfg.max_shift)
        v = f.yx[f.valid]
        return v.mean(axis=0) if len(v) else np.full(2, np.nan)

    near = [mean_flow(z, z + 1) for z in range(z_max)]
    out = {}
    for k in GAP_LENGTHS:
        d = [mean_flow(z, z + k) - np.sum(near[z:z + k], axis=0) for z in range(z_max - k + 1)]
        out[k] = float(np.nanmean(np.square(d)))
    return out


def drift_covariance(acov: np.ndarray, depth: int) -> np.ndarray:
    """Covariance (depth, depth) of the drift summed from steps with autocovariance acov."""
    n = depth - 1
    lag = np.abs(np.subtract.outer(np.arange(n), np.arange(n)))
    steps = np.where(lag < len(acov), acov[np.minimum(lag, len(acov) - 1)], 0.0)
    return drift_.summed_steps(steps)


def chain_error(acov: np.ndarray, depth: int) -> float:
    """Expected strict residual per coordinate of taking the chain as it is (the drift left
    in)."""
    c = drift_covariance(acov, depth)
    centre = np.eye(depth) - 1.0 / depth
    return float(np.sqrt(np.trace(centre @ c @ centre) / depth))


def links(present: np.ndarray, excess: dict[int, float]) -> list[tuple[int, int, float]]:
    """The chain's links (a, b, error variance) between consecutive `present` sections: no
    error one section long, excess[k] k sections long."""
    return [(int(a), int(b), excess.get(int(b - a), 0.0) if b - a > 1 else 0.0)
            for a, b in pairwise(np.flatnonzero(present))]


def bound(acov: np.ndarray, present: np.ndarray, scored: np.ndarray, own_sd: float,
          excess: dict[int, float]) -> float:
    """Expected strict residual per coordinate (RMS) of the best estimate of the `scored`
    sections' own values (independent, sd `own_sd`) when only `present` ones are imaged and
    the chain's links join consecutive present sections: what a link shows is the
    difference of own value plus drift, without error one section long and with variance
    excess[k] more k sections long. Only differences are seen: no section's own value is
    known."""
    depth = len(present)
    prior = np.zeros((2 * depth, 2 * depth))  # shifts, then drift
    prior[:depth, :depth] = own_sd**2 * np.eye(depth)
    prior[depth:, depth:] = drift_covariance(acov, depth)
    chain = links(present, excess)
    h = np.zeros((len(chain), 2 * depth))
    for row, (a, b, _) in enumerate(chain):
        h[row, [b, depth + b]] = 1.0
        h[row, [a, depth + a]] = -1.0
    noise = np.array([v for _, _, v in chain])
    s = h @ prior @ h.T + np.diag(noise) + 1e-9 * np.eye(len(noise))
    posterior = prior - prior @ h.T @ np.linalg.solve(s, h @ prior)
    v = np.flatnonzero(scored)
    centre = np.eye(len(v)) - 1.0 / len(v)
    return float(np.sqrt(np.trace(centre @ posterior[np.ix_(v, v)] @ centre) / len(v)))


def simulated(acov: np.ndarray, present: np.ndarray, scored: np.ndarray, own_sd: float,
              excess: dict[int, float], draws: int = 100_000, seed: int = 0) -> float:
    """`bound` checked by simulation: stacks drawn from the same model, the best linear
    estimator of the own values from the links fitted by least squares on half of them,
    its centred error over the scored sections measured on the other half."""
    rng = np.random.default_rng(seed)
    depth = len(present)
    root = np.linalg.cholesky(drift_covariance(acov, depth) + 1e-12 * np.eye(depth))
    own = rng.normal(0.0, own_sd, (2 * draws, depth))
    seen = own + rng.standard_normal((2 * draws, depth)) @ root.T
    shown = np.stack([seen[:, b] - seen[:, a] + rng.normal(0.0, np.sqrt(v), 2 * draws)
                      for a, b, v in links(present, excess)], axis=1)
    coef, *_ = np.linalg.lstsq(shown[:draws], own[:draws], rcond=None)
    err = (shown[draws:] @ coef - own[draws:])[:, np.flatnonzero(scored)]
    err -= err.mean(axis=1, keepdims=True)
    return float(np.sqrt(np.mean(err**2)))


def own_linear_sd(shape_yx: tuple[int, int], seeds: range, every: int = 3) -> float:
    """sd of the elements of the sections' own linear parts (the generator's deformations
    without folds and cracks, pooled over elements)."""
    ny, nx = shape_yx
    yy, xx = np.mgrid[0:ny:4, 0:nx:4]
    points = np.column_stack([yy.ravel(), xx.ravel()]).astype(np.float64)
    elements = []
    for seed in seeds:
        plan = replace(raw.plan_raw((16, ny, nx), RawConfig(seed=seed)), lines=[])
        for z in range(0, 16, every):
            d = raw.section_deformation(plan, z)[0][:, ::4, ::4].reshape(2, -1).T
            elements.append(affine_parts(d, points)[1])
    return float(np.sqrt(np.mean(np.var(np.array(elements), axis=0))))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="64,256,256", help="z,y,x of the undeformed volumes")
    p.add_argument("--seeds", default="3,11")
    p.add_argument("--depths", default="16,32,64,256", help="stack depths to bound")
    p.add_argument("--plan-seeds", default="3,11,17,23,29",
                   help="16-section trial volumes whose missing sections to bound with")
    p.add_argument("--check", action="store_true",
                   help="check each trial volume's translation bound by simulation")
    p.add_argument("--json", type=Path, default=Path("bench/reconstruct/align_bound.json"))
    a = p.parse_args()
    z, y, x = (int(v) for v in a.size.split(","))
    translations, linears, excesses = [], [], []
    for seed in (int(s) for s in a.seeds.split(",")):
        stack = synth.synthesize(synth.SynthConfig((z, y, x), seed=seed)).image
        stack = stack.astype(np.float32) / 255
        t, lin = map_parts(follow(stack))
        translations.append(t)
        linears.append(lin)
        excesses.append(gap_excess(stack, z - max(GAP_LENGTHS)))
    acov_t, acov_l = step_autocovariance(translations), step_autocovariance(linears)
    excess = {k: float(np.mean([e[k] for e in excesses])) for k in GAP_LENGTHS}
    shift_sd = RawConfig().section_shift
    linear_sd = own_linear_sd((y, x), range(1000, 1030))
    lever = np.sqrt((y - 2 * MARGIN) ** 2 / 12.0 + (x - 2 * MARGIN) ** 2 / 12.0)
    out: dict[str, object] = {
        "size_zyx": [z, y, x], "seeds": a.seeds, "section_shift_sd_px": shift_sd,
        "drift_step_sd_px": float(np.sqrt(acov_t[0])),
        "drift_step_autocorrelation": [round(float(v / acov_t[0]), 3) for v in acov_t[1:6]],
        "drift_range_px": [round(float(np.ptp(d, axis=0).max()), 2) for d in translations],
        "linear_drift_step_sd": float(np.sqrt(acov_l[0])),
        "linear_drift_step_autocorrelation": [round(float(v / acov_l[0]), 3)
                                              for v in acov_l[1:6]],
        "section_linear_sd": linear_sd, "linear_lever_px": float(lever),
        "gap_excess_rms_px": {k: float(np.sqrt(2 * v)) for k, v in excess.items()},
        "bound": {}, "trial_volumes": {}}
    for depth in (int(v) for v in a.depths.split(",")):
        every = np.ones(depth, bool)
        # per coordinate -> both coordinates; each linear element's error e moves the
        # scored pixels by e times their spread along its column: 2 e^2 lever^2 in all
        row = {"translation_px": np.sqrt(2) * bound(acov_t, every, every, shift_sd, {}),
               "translation_chain_px": np.sqrt(2) * chain_error(acov_t, depth),
               "linear_px": np.sqrt(2) * lever * bound(acov_l, every, every, linear_sd, {}),
               "linear_chain_px": np.sqrt(2) * lever * chain_error(acov_l, depth)}
        row["both_px"] = float(np.hypot(row["translation_px"], row["linear_px"]))
        out["bound"][depth] = {k: float(v) for k, v in row.items()}  # type: ignore[index]
        print(f"{depth} sections: best possible strict residual from translation "
              f"{row['translation_px']:.2f} px (chain as it is: "
              f"{row['translation_chain_px']:.2f}), linear part {row['linear_px']:.2f} "
              f"({row['linear_chain_px']:.2f}), both {row['both_px']:.2f} px RMS")
    for seed in (int(s) for s in a.plan_seeds.split(",") if s):
        plan = raw.plan_raw((16, y, x), RawConfig(seed=seed))
        present = np.array([k not in plan.missing for k in range(16)])
        scored = present & np.array([k not in plan.blurred for k in range(16)])
        t = np.sqrt(2) * bound(acov_t, present, scored, shift_sd, excess)
        lin = np.sqrt(2) * lever * bound(acov_l, present, scored, linear_sd, {})
        out["trial_volumes"][seed] = {  # type: ignore[index]
            "missing": list(plan.missing), "translation_px": t, "linear_px": lin,
            "both_px": float(np.hypot(t, lin))}
        print(f"16-section volume, seed {seed} (missing {list(plan.missing)}): translation "
              f"{t:.2f} px, linear part {lin:.2f}, both {np.hypot(t, lin):.2f} px")
        if a.check:
            sim = np.sqrt(2) * simulated(acov_t, present, scored, shift_sd, excess, seed=seed)
            out["trial_volumes"][seed]["translation_simulated_px"] = sim  # type: ignore[index]
            print(f"  translation by simulation: {sim:.2f} px")
    print(json.dumps({k: v for k, v in out.items() if k not in ("bound", "trial_volumes")}))
    a.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
