"""Speed of the front end's flow estimation and mesh relaxation, each beside a baseline.

    uv run python bench/reconstruct/align.py --size 1024

Flow: one section (smooth random texture, `--size` px square) and a copy warped by a known
smooth field; patchwise cross-correlation on a grid (64 px patches, 16 px stride), ours
(`align.flow.xcorr_peaks`: every patch at once, FFT in JAX) against scikit-image's
`phase_cross_correlation` called per patch (upsample factor 10), the usual way to do it
without batching. Both are scored against the known field (median error, px).

Mesh: the section's node grid pulled to noisy targets (30% dropped), ours (FIRE in one jitted
JAX loop, `align.mesh.relax`) against scipy's L-BFGS-B minimising the same energy with the
same JAX gradient. Speed is section Mvox/s; the ratio is ours over the baseline.

Truth (`--truth-size Z,Y,X`, 0 to skip; `--truth-seeds`): synthetic volumes through the `raw`
preset and the front end (`align.trial`): seam error, defect recall/precision, alignment
residual (strict, and up to motion smooth along z), the strict one split per section into
translation, linear and non-linear parts. Two floors isolate where it comes from, each the
aligner (`align.elastic`) on a stack without tiles, noise or defects: "content only" aligns the
undeformed volume (the true maps are the identity; every residual is the tissue's own motion
between sections that the flows follow, with the trial's missing sections left out), and
"estimator only" aligns one undeformed section under each section's true deformation (no
tissue motion: the residual is the flow's, the mesh's and the composition's own error).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import scipy.ndimage as ndi
from scipy.optimize import minimize
from skimage.registration import phase_cross_correlation

from connectome_query.reconstruct import synth
from connectome_query.reconstruct.align import elastic, evaluate, flow, mesh, trial, warp
from connectome_query.reconstruct.synth import raw
from connectome_query.reconstruct.synth.raw import smooth_field

PATCH, STRIDE = 64, 16


def _pair(size: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    img = ndi.gaussian_filter(rng.standard_normal((size, size)), 2.0).astype(np.float32)
    w = smooth_field(seed, 0, (size, size), 3.0, 300.0)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    moving = ndi.map_coordinates(img, [yy - w[0], xx - w[1]], order=1, mode="mirror")
    return img, moving.astype(np.float32), w


def bench_flow(size: int, seed: int) -> dict[str, float]:
    fixed, moving, w = _pair(size, seed)
    gy, gx = flow.grid_shape(fixed.shape, STRIDE)
    nodes = np.moveaxis(np.mgrid[0:gy, 0:gx], 0, -1).reshape(-1, 2) * STRIDE
    nodes = np.minimum(nodes, size - 1)
    inner = ((nodes >= PATCH // 2) & (nodes <= size - 1 - PATCH // 2)).all(1)
    nodes = nodes[inner]
    truth = np.stack([w[0][nodes[:, 0], nodes[:, 1]], w[1][nodes[:, 0], nodes[:, 1]]], -1)
    fp = flow._patches(fixed, nodes, PATCH)
    mp = flow._patches(moving, nodes, PATCH)
    win = jnp.asarray(flow._window(PATCH))
    jax.block_until_ready(flow.xcorr_peaks(jnp.asarray(fp), jnp.asarray(mp), win, 16))
    t = time.perf_counter()
    ours, _, _ = flow.xcorr_peaks(jnp.asarray(fp), jnp.asarray(mp), win, 16)
    ours = np.asarray(jax.block_until_ready(ours))
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    base = np.array([-phase_cross_correlation(a, b, upsample_factor=10)[0]
                     for a, b in zip(fp, mp, strict=True)])
    t_base = time.perf_counter() - t
    mvox = size * size / 1e6
    return {"patches": len(nodes), "ours_s": t_ours, "baseline_s": t_base,
            "ours_mvox_s": mvox / t_ours, "baseline_mvox_s": mvox / t_base,
            "ratio": t_base / t_ours,
            "ours_median_err_px": float(np.median(np.linalg.norm(ours - truth, axis=1))),
            "baseline_median_err_px": float(np.median(np.linalg.norm(base - truth, axis=1)))}


def bench_mesh(size: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    gy, gx = flow.grid_shape((size, size), STRIDE)
    rest = warp.identity_nodes((gy, gx), STRIDE)
    field = smooth_field(seed, 1, (gy * STRIDE, gx * STRIDE), 3.0, 300.0)
    true = rest + np.stack([f[::STRIDE, ::STRIDE] for f in field], -1)
    target = true + rng.normal(0, 0.3, true.shape)
    weight = (rng.random((gy, gx)) > 0.3).astype(np.float64)
    cfg = mesh.MeshConfig()
    mesh.relax(target, weight, rest, rest, cfg)  # compile
    t = time.perf_counter()
    x, steps, _ = mesh.relax(target, weight, rest, rest, cfg)
    t_ours = time.perf_counter() - t
    tj, wj, rj = (jnp.asarray(a, jnp.float32) for a in (target, weight, rest))
    value_grad = jax.jit(jax.value_and_grad(
        lambda v: mesh.energy(v.reshape(gy, gx, 2), tj, wj, rj, cfg.k_flow, cfg.k_intra)))
    value_grad(jnp.asarray(rest.reshape(-1), jnp.float32))

    def fun(v: np.ndarray) -> tuple[float, np.ndarray]:
        e, g = value_grad(jnp.asarray(v, jnp.float32))
        return float(e), np.asarray(g, np.float64)

    t = time.perf_counter()
    res = minimize(fun, rest.reshape(-1), jac=True, method="L-BFGS-B",
                   options={"gtol": cfg.tolerance, "maxiter": cfg.max_steps})
    t_base = time.perf_counter() - t
    mvox = size * size / 1e6
    rms = float(np.sqrt(np.mean(np.sum((x - true) ** 2, -1))))
    rms_b = float(np.sqrt(np.mean(np.sum((res.x.reshape(gy, gx, 2) - true) ** 2, -1))))
    return {"nodes": gy * gx, "ours_steps": steps, "ours_s": t_ours, "baseline_s": t_base,
            "ours_mvox_s": mvox / t_ours, "baseline_mvox_s": mvox / t_base,
            "ratio": t_base / t_ours, "ours_rms_px": rms, "baseline_rms_px": rms_b}


def _floor(stack: np.ndarray, fields: list[np.ndarray], usable: np.ndarray,
           reference_ok: np.ndarray, margin: int = 16) -> dict[str, float]:
    """Strict residual of the aligner on `stack` (z, y, x float) whose section z shows at p
    the tissue at p + fields[z](p): the true positions of every aligned pixel, inside the
    section by `margin` px, on usable sections."""
    nz, ny, nx = stack.shape
    maps = elastic.align_stack(lambda z: stack[z], lambda z: np.zeros((ny, nx), bool), nz,
                               usable, reference_ok, (ny, nx))
    qs, valid = [], []
    for z in range(nz):
        c = warp.source_coordinates(maps.nodes[z], maps.stride, (ny, nx))
        d = np.stack([ndi.map_coordinates(fields[z][k], c, order=1, mode="nearest")
                      for k in range(2)], -1)
        q = np.moveaxis(c, 0, -1) + d
        qs.append(q)
        valid.append(((q >= margin) & (q <= np.array([ny, nx]) - 1 - margin)).all(-1)
                     & reference_ok[z])
    r = evaluate.alignment_residual(np.stack(qs), np.stack(valid))
    return {"rms": r.rms, "p99": r.p99}


def bench_floors(image: np.ndarray, cfg: raw.RawConfig) -> dict[str, dict[str, float]]:
    """The two floors of the docstring, on the trial's volume and plan."""
    nz, ny, nx = image.shape
    plan = raw.plan_raw(image.shape, cfg)
    usable = np.array([z not in plan.missing for z in range(nz)])
    ref_ok = usable & np.array([z not in plan.blurred for z in range(nz)])
    und = image.astype(np.float32) / 255
    zero = [np.zeros((2, ny, nx), np.float32)] * nz
    fields = [raw.section_deformation(plan, z)[0] for z in range(nz)]
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    one = np.stack([ndi.map_coordinates(und[nz // 2], [yy + f[0], xx + f[1]], order=1,
                                        mode="mirror") for f in fields])
    everything = np.ones(nz, bool)
    return {"content_only": _floor(und, zero, usable, ref_ok),
            "estimator_only": _floor(one, fields, everything, everything)}


def bench_truth(shape_zyx: tuple[int, int, int], seed: int,
                missing_runs: tuple[int, ...] = raw.RawConfig.missing_runs
                ) -> dict[str, object]:
    image = synth.synthesize(synth.SynthConfig(shape_zyx, seed=seed)).image
    cfg = raw.RawConfig(seed=seed, missing_runs=missing_runs)
    t = time.perf_counter()
    r = trial.run_trial(image, cfg)
    return {"floors_px": bench_floors(image, cfg), "missing_runs": list(missing_runs),
            "strict_parts_px": r.parts,
            "strict_by_edge_distance_px": r.by_edge,
"shape_zyx": list(shape_zyx), "seconds": time.perf_counter() - t,
            "seam_px": r.seams, "defects": r.defects,
            "residual_px": {"rms": r.residual.rms, "p99": r.residual.p99,
                            "pixels": r.residual.pixels},
            "residual_up_to_smooth_z_px": {f"sd {k:g} sections": {"rms": v.rms, "p99": v.p99}
                                           for k, v in r.smooth.items()},
            "per_section_rms_px": [round(v, 2) for v in r.per_section_rms],
            "flow_coverage": [round(float(c), 2) for c in r.flow_coverage]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1024,
                   help="section side (px) of the speed runs; 0 skips them")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--truth-size", default="16,256,256", help="z,y,x of the truth trial; 0 skips")
    p.add_argument("--truth-seeds", default="3,11,17,23,29",
                   help="seeds of the truth trials (3, 11, 17 chose the settings; 23 and 29 are "
                        "held out)")
    p.add_argument("--missing-runs", default="1,2",
                   help="lengths of the runs of missing sections in the truth trials")
    p.add_argument("--json", type=Path, default=Path("bench/reconstruct/align.json"))
    a = p.parse_args()
    result: dict[str, object] = {"size": a.size, "device": str(jax.devices()[0]),
                                 "load_1min": os.getloadavg()[0]}
    if a.size > 0:
        for name, run in (("flow", bench_flow), ("mesh", bench_mesh)):
            result[name] = r = run(a.size, a.seed)
            print(f"{name}: ours {r['ours_mvox_s']:.2f} Mvox/s, baseline "
                  f"{r['baseline_mvox_s']:.2f} Mvox/s, ratio {r['ratio']:.1f}x  ({json.dumps(r)})")
    if a.truth_size != "0":
        z, y, x = (int(v) for v in a.truth_size.split(","))
        result["truth"] = truths = {}
        runs = tuple(int(v) for v in a.missing_runs.split(","))
        for seed in (int(v) for v in a.truth_seeds.split(",")):
            truths[seed] = tr = bench_truth((z, y, x), seed, runs)
            print(f"truth {z}x{y}x{x} seed {seed}: seams {tr['seam_px']}, residual "
                  f"{tr['residual_px']} (parts {tr['strict_parts_px']}; floors "
                  f"{tr['floors_px']}), up to smooth motion along z "
                  f"{tr['residual_up_to_smooth_z_px']}, defects {tr['defects']}")
    print(f"load average (1 min): {result['load_1min']:.2f} at start, "
          f"{os.getloadavg()[0]:.2f} at end; device {result['device']}")
    a.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
