"""The front end on a raw volume in memory, scored against the generator's truth.

`run_trial` degrades and tiles an undeformed volume (`synth.raw`), stitches, finds defects,
aligns, warps, and measures every step with `evaluate`: seam error, defect recall and
precision, alignment residual on valid tissue. Used by the tests and `bench/reconstruct`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

from connectome_query.reconstruct.align import defects, elastic, evaluate, stitch, warp
from connectome_query.reconstruct.align.masks import LINE_DEFECTS, SECTION_DEFECTS, Defect, has
from connectome_query.reconstruct.synth import raw

SMOOTH_SECTIONS = (2.0, 4.0)
"""Widths (sd, sections) of the smooth motion along z the second residual forgives."""


@dataclass
class TrialResult:
    seams: dict[str, float]
    defects: dict[str, dict[str, float]]
    residual: evaluate.Residual  # strict
    section_flags: np.ndarray
    flow_coverage: np.ndarray
    per_section_rms: list[float] = field(default_factory=list)
    smooth: dict[float, evaluate.Residual] = field(default_factory=dict)
    """Residual up to motion along z smooth over this many sections (sd)."""
    parts: dict[str, float] = field(default_factory=dict)
    """The strict residual's RMS split into orthogonal parts (`residual_parts`)."""
    by_edge: dict[str, float] = field(default_factory=dict)
    """The strict residual's RMS by distance from the section's edge (`residual_by_edge`)."""


def run_trial(undeformed: np.ndarray, cfg: raw.RawConfig,
              align: elastic.AlignConfig | None = None, margin: int = 16) -> TrialResult:
    """Degrade `undeformed` (z, y, x uint8) with `cfg`, run the front end, measure it."""
    nz, ny, nx = undeformed.shape
    plan = raw.plan_raw((nz, ny, nx), cfg)
    made = [raw.raw_section(plan, z, undeformed[z]) for z in range(nz)]
    layout = stitch.Layout(cfg.grid, plan.tile_shape, cfg.overlap, (ny, nx))
    flat = stitch.flat_field([m[0] for m in made])
    st = [stitch.stitch_section(m[0], layout, flat, z) for z, m in enumerate(made)]
    srcs, seams = [], []
    for z, s in enumerate(st):
        src, seam = evaluate.stitched_sources(s, layout, plan, z)
        srcs.append(src)
        if z not in plan.missing:
            seams.append(seam)
    flags = defects.classify_sections([defects.section_quality(s.image, s.covered) for s in st])
    found = np.stack([(defects.line_defects(s.image, s.covered) if not flags[z]
                       else np.zeros((ny, nx), np.uint8)) | flags[z] for z, s in enumerate(st)])
    truth = np.stack([evaluate.truth_in_stitched_frame(made[z][2], srcs[z]) for z in range(nz)])
    covered = np.stack([s.covered for s in st])
    usable = ~has(flags, Defect.MISSING)
    maps = elastic.align_stack(
        lambda z: st[z].image, lambda z: has(found[z], LINE_DEFECTS) | ~st[z].covered, nz,
        usable, usable & ~has(flags, SECTION_DEFECTS), (ny, nx), align or elastic.AlignConfig())
    qs, valid = [], []
    for z, s in enumerate(st):
        coords = warp.source_coordinates(maps.nodes[z], maps.stride, (ny, nx))
        q = evaluate.tissue_positions(coords, srcs[z], made[z][1])
        ok = z not in plan.missing and z not in plan.blurred
        qs.append(q)
        valid.append(evaluate.valid_tissue(coords, srcs[z], made[z][2], s.covered, q, margin)
                     & ok)
    q_all, v_all = np.stack(qs), np.stack(valid)
    res = evaluate.alignment_residual(q_all, v_all)
    r, use = strict_offsets(q_all, v_all)
    r = np.linalg.norm(r, axis=-1)
    per = [float(np.sqrt(np.mean(r[z][use[z]] ** 2))) if use[z].any() else float("nan")
           for z in range(nz)]
    smooth = {s: evaluate.alignment_residual(q_all, v_all, s) for s in SMOOTH_SECTIONS}
    return TrialResult(evaluate.seam_error(seams),
                       evaluate.defect_report(found, truth, covered), res, flags,
                       maps.flow_coverage, per, smooth, residual_parts(q_all, v_all),
                       residual_by_edge(q_all, v_all))


def strict_offsets(q: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(q minus its per-pixel mean over the valid sections (z, y, x, 2), the pixels where
    that is measured (valid, and valid in at least two sections)): the strict residual's
    vectors."""
    w = valid[..., None].astype(np.float64)
    n = w.sum(axis=0)
    mean = (q * w).sum(axis=0) / np.maximum(n, 1)
    return q - mean[None], valid & (n[None, ..., 0] >= 2)


def residual_parts(q: np.ndarray, valid: np.ndarray) -> dict[str, float]:
    """The strict residual's RMS split, per section, into its mean (the section's
    translation error), its best affine part beyond that (rotation, scale, shear) and what
    is left (non-linear): least-squares projections, so the squares add up to the total's."""
    r, use = strict_offsets(q, valid)
    sums = {"translation": 0.0, "linear": 0.0, "non_linear": 0.0}
    count = 0
    for z in range(q.shape[0]):
        yx = np.argwhere(use[z]).astype(np.float64)
        if len(yx) < 3:
            continue
        v = r[z][use[z]]
        design = np.column_stack([np.ones(len(yx)), yx - yx.mean(axis=0)])
        coef, *_ = np.linalg.lstsq(design, v, rcond=None)
        affine = design @ coef
        sums["translation"] += float(len(yx) * np.sum(coef[0] ** 2))
        sums["linear"] += float(np.sum((affine - coef[0]) ** 2))
        sums["non_linear"] += float(np.sum((v - affine) ** 2))
        count += len(yx)
    return {k: float(np.sqrt(v / max(count, 1))) for k, v in sums.items()}


def residual_by_edge(q: np.ndarray, valid: np.ndarray, bands: tuple[int, ...] = (32, 64)
                     ) -> dict[str, float]:
    """The strict residual's RMS over the aligned pixels whose distance (px) to the nearest
    border of the section falls in each band: below bands[0], between consecutive bounds,
    and beyond the last (keys "0-32", "32-64", "64-"); NaN for an empty band."""
    r, use = strict_offsets(q, valid)
    n2 = np.sum(r**2, axis=-1)
    ny, nx = valid.shape[1:]
    yy, xx = np.mgrid[0:ny, 0:nx]
    edge = np.minimum(np.minimum(yy, ny - 1 - yy), np.minimum(xx, nx - 1 - xx))
    bounds = (0, *bands, None)
    out = {}
    for lo, hi in pairwise(bounds):
        band = (edge >= lo) if hi is None else ((edge >= lo) & (edge < hi))
        m = use & band[None]
        key = f"{lo}-" if hi is None else f"{lo}-{hi}"
        out[key] = float(np.sqrt(n2[m].mean())) if m.any() else float("nan")
    return out
