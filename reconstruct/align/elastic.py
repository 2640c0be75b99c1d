"""Elastic alignment of a stack: flows to the nearest aligned sections, meshes relaxed in
order along z, maps composed.

The first usable section is the reference (its map is the identity). Each next section gets
flows against up to `AlignConfig.references` aligned sections before it (the nearest ones:
missing sections are skipped; damaged ones, such as blurred sections, are aligned with both
partners blurred alike, and serve as references the same way, blur-matched, when
`damaged_references` is set). Maps compose: node p of the aligned frame shows reference r at
x_r(p), and the flow says the section shows that place at x_r(p) + f(x_r(p)), which is the
node's target from r; the targets of all references are averaged (weighted by
1 / distance^`distance_power`, those far from the others dropped), and the mesh, held to the
references' mean shape, relaxes against them (`mesh.relax`). Nodes without a good flow (the
section's edge, masked areas) get a weak target continuing the section's own flows locally
affinely (`fill_targets`) instead of following only the references' shape.
A section aligned across a gap (its nearest reference two or more sections back) holds its
shape stiffer (`gap_mesh`).

Across three or more missing sections (nearest reference beyond `trusted_distance`) the
tissue has changed too much for any flow tried to find the sections' translation reliably
(on `raw` sections four apart 85-91% of the patch flows that pass the checks miss by more
than 3 px, and whole-section correlation of structure or of low-passed intensity misses by
more than 5 px on 8-75% of pairs), so such a section is aligned as well as its flows allow
and reported, never silently.

Why the nearest reference dominates: content moves between sections (neurites run obliquely),
and the section-mean error of a flow grows faster than the distance between the sections
(on 256² `raw` sections: 0.5 px one apart, 1.6 two apart, 3.3 three apart), so a flow
one section away, even between blurred partners (0.6 px), beats one across a skipped section.

Flows follow the tissue: neurites cross sections obliquely, so content moves between sections
even where no section is deformed, and maps composed along z drift with it. Section
deformations are independent from section to section (as the synthetic truth draws them, and
as each cut and imaging deforms a section on its own), so the part of the maps that changes
smoothly along z is mostly that drift. `remove_z_trend` takes it out of each section's shape
(rotation, scale, shear and the non-linear part) as a polynomial; not out of its translation,
where a section's rigid shift is large (8 px sd in the `raw` preset) and over a short stack a
polynomial fit takes as much of the shifts as of the drift: `drift.remove_drift` estimates the
translation's drift from how differently the two behave along z instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from connectome_query.reconstruct.align import drift as drift_
from connectome_query.reconstruct.align import flow as flow_
from connectome_query.reconstruct.align import mesh as mesh_
from connectome_query.reconstruct.align import stack_solve
from connectome_query.reconstruct.align.warp import identity_nodes, sample_nodes
from connectome_query.reconstruct.progress import Tick, no_progress

MIN_COVERAGE = 0.2
"""Fraction of good flow nodes below which a section's alignment is reported as uncertain and
a damaged section does not serve as a reference."""


@dataclass(frozen=True)
class AlignConfig:
    """Flow grid and mesh settings."""

    stride: int = 32
    patch: int = 128
    max_shift: int = 24
    references: int = 3  # aligned sections each section is aligned to
    damaged_blur: float = 2.0  # px, both partners of a damaged (blurred) section
    damaged_references: bool = True  # damaged sections serve as references, blur-matched
    distance_power: float = 4.0  # a reference's weight: 1 / distance ** power
    border_fill: float = 0.1  # weight of locally affine targets at flowless nodes (0: none)
    border_sigma: float = 3.0  # nodes: reach of the local affine fit
    z_trend_degree: int = 2  # polynomial in z removed from the maps' shapes (0: none)
    drift: drift_.DriftConfig = field(default_factory=drift_.DriftConfig)  # out of the maps
    gap_stiffness: float = 4.0  # in-section springs this much stiffer per section skipped
    trusted_distance: int = 3  # nearest reference further back: the alignment is reported
    mesh: mesh_.MeshConfig = field(default_factory=mesh_.MeshConfig)
    stack: stack_solve.StackSolveConfig = field(default_factory=stack_solve.StackSolveConfig)


@dataclass
class Maps:
    """Solved node positions per section (z, gy, gx, 2) and what was found on the way."""

    nodes: np.ndarray
    stride: int
    reference: np.ndarray  # (z,) int: the section each was aligned to (-1: none)
    flow_coverage: np.ndarray  # (z,) fraction of nodes with a good flow
    steps: np.ndarray  # (z,) relaxation steps
    notes: list[str] = field(default_factory=list)


def _targets(f: flow_.Flow, prev: np.ndarray, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Targets (gy, gx, 2) and weights (gy, gx) of a section's nodes from a flow measured
    against a reference whose solved nodes are `prev`: the flow at the reference's node
    positions, bilinear over the good nodes only."""
    valid = f.valid[..., None].astype(np.float64)
    num = sample_nodes(np.where(valid > 0, f.yx, 0.0) * valid, prev, stride)
    den = sample_nodes(valid, prev, stride)
    inc = num / np.maximum(den, 1e-9)
    return prev + inc, (den[..., 0] >= 0.5).astype(np.float64)


def combine_targets(targets: list[np.ndarray], weights: list[np.ndarray],
                    agree: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Per node, the weighted mean of the references' targets, after dropping those more than
    `agree` px from the weighted median of the node's targets; weight: the summed weight."""
    t = np.stack(targets)  # (r, gy, gx, 2)
    w = np.stack(weights)  # (r, gy, gx)
    if len(targets) > 1:
        med = np.stack([_weighted_median(t[..., k], w) for k in range(2)], -1)
        w = np.where(np.linalg.norm(t - med[None], axis=-1) <= agree, w, 0.0)
    total = w.sum(axis=0)
    mean = (t * w[..., None]).sum(axis=0) / np.maximum(total, 1e-9)[..., None]
    return mean, total


def _weighted_median(v: np.ndarray, w: np.ndarray) -> np.ndarray:
    order = np.argsort(v, axis=0)
    vs = np.take_along_axis(v, order, 0)
    ws = np.take_along_axis(w, order, 0)
    cum = ws.cumsum(axis=0)
    half = cum[-1] / 2
    idx = np.minimum((cum < half[None]).sum(axis=0), v.shape[0] - 1)
    return np.take_along_axis(vs, idx[None], 0)[0]


FlowLookup = Callable[[int, int], flow_.Flow | None]
"""The flow of section z against reference r measured beforehand (`pair_flow` of the pair), or
None where it was not: `align_stack` then measures it itself."""


def pair_blur(z_ok: bool, r_ok: bool, config: AlignConfig) -> float:
    """Blur (px) given to both partners of a flow: a damaged section or a damaged reference is
    aligned with both partners blurred alike."""
    return config.damaged_blur if not (z_ok and r_ok) else 0.0


def pair_flow(r_img: np.ndarray, r_mask: np.ndarray, img: np.ndarray, mask: np.ndarray,
              blur: float, config: AlignConfig) -> flow_.Flow:
    """The flow from reference section `r_img` to section `img`, no flow from either's masked
    pixels."""
    return flow_.section_flow(r_img, img, config.stride, config.patch, config.max_shift,
                              mask=r_mask | mask, blur=blur)


def candidate_pairs(usable: np.ndarray, reference_ok: np.ndarray,
                    config: AlignConfig) -> list[tuple[int, int]]:
    """Every (z, r) whose flow `align_stack` may measure, whichever damaged sections turn out
    to serve as references: r runs back from z over the sections that could serve (the first
    good one, and after it the good ones, and the damaged usable ones where
    `damaged_references` is set) until `config.references` good ones are taken."""
    pairs: list[tuple[int, int]] = []
    serving: list[int] = []
    for z in range(len(usable)):
        if not usable[z] or not (serving or reference_ok[z]):
            continue
        taken = 0
        for r in reversed(serving):
            if taken >= config.references:
                break
            pairs.append((z, r))
            taken += bool(reference_ok[r])
        if reference_ok[z] or (config.damaged_references and serving):
            serving.append(z)
    return pairs


def align_stack(section: Callable[[int], np.ndarray], mask: Callable[[int], np.ndarray],
                n_sections: int, usable: np.ndarray, reference_ok: np.ndarray,
                shape: tuple[int, int], config: AlignConfig = AlignConfig(),
                tick: Tick = no_progress, flows: FlowLookup | None = None) -> Maps:
    """Align `n_sections` stitched sections (read through `section(z)`, defect masks through
    `mask(z)`, bool). `usable[z]`: the section can be aligned; `reference_ok[z]`: later
    sections may be aligned to it. `flows`: flows measured beforehand (`candidate_pairs`, as
    engine tasks); a pair it lacks is measured here, so the maps never depend on it."""
    grid = flow_.grid_shape(shape, config.stride)
    ident = identity_nodes(grid, config.stride)
    nodes = np.repeat(ident[None], n_sections, axis=0)
    reference = np.full(n_sections, -1, np.int64)
    coverage = np.zeros(n_sections)
    steps = np.zeros(n_sections, np.int64)
    notes: list[str] = []
    refs: list[tuple[int, np.ndarray, np.ndarray, bool]] = []  # nearest last; damaged
    used: dict[tuple[int, int], flow_.Flow] = {}  # the flows the sections were aligned with
    for z in range(n_sections):
        tick(f"aligning section {z}", z / max(n_sections, 1))
        if not usable[z]:
            if refs:
                nodes[z] = nodes[refs[-1][0]]
            continue
        img, m = section(z), mask(z)
        if not refs:
            if reference_ok[z]:
                refs.append((z, img, m, False))
                reference[z] = z
                coverage[z] = 1.0
            continue
        targets, weights, covs = [], [], []
        for r_z, r_img, r_mask, r_damaged in reversed(refs):
            f = flows(z, r_z) if flows is not None else None
            if f is None:
                blur = pair_blur(bool(reference_ok[z]), not r_damaged, config)
                f = pair_flow(r_img, r_mask, img, m, blur, config)
            used[(z, r_z)] = f
            t, w = _targets(f, nodes[r_z], config.stride)
            targets.append(t)
            weights.append(w / (z - r_z) ** config.distance_power)
            covs.append(float(f.valid.mean()))
        target, weight = combine_targets(targets, weights)
        if config.border_fill > 0:
            target, weight = fill_targets(target, weight, ident, config.border_sigma,
                                          config.border_fill)
        near_z = refs[-1][0]
        coverage[z] = covs[0]
        prev = nodes[near_z]
        good = weight > 0
        # start from the reference moved by the targets' median; nodes without a good flow
        # are carried by the mesh, never by a filled-in guess
        shift = np.median((target - prev)[good], axis=0) if good.any() else np.zeros(2)
        rest = np.mean([nodes[r[0]] for r in refs], axis=0)
        x, n_steps, _ = mesh_.relax(target, weight / max(float(weight.max()), 1e-9), rest,
                                    prev + shift, gap_mesh(config, z - near_z))
        nodes[z], steps[z], reference[z] = x, n_steps, near_z
        note = uncertainty_note(z, near_z, max(covs), config)
        if note:
            notes.append(note)
        # a damaged section serves only where its own flows held
        if reference_ok[z] or (config.damaged_references and max(covs) >= MIN_COVERAGE):
            refs.append((z, img, m, not reference_ok[z]))
            refs = refs[-config.references:]
    if not refs:
        notes.append("no section could serve as the alignment reference; maps are identity")
    else:
        n_usable = int(usable.sum())
        per = stack_solve.window(n_usable, ident.shape[:2], config.stack.max_cost)
        if config.stack.enabled and per is not None:
            nodes = stack_solve.solve_stack(nodes, used, usable, config.stride,
                                            config.distance_power, config.stack, per)
            if per < n_usable:
                notes.append(f"the joint solve ran in windows of {per} sections")
        elif config.stack.enabled:
            notes.append(f"sections of {ident.shape[0]}x{ident.shape[1]} nodes: too many "
                         "for the joint solve; the sequential solution is kept")
        nodes = remove_z_trend(nodes, ident, usable, config.z_trend_degree)
        nodes = drift_.remove_drift(nodes, usable, config.drift)
    # sections before the first reference keep the identity; skipped ones the last map
    return Maps(nodes, config.stride, reference, coverage, steps, notes)


def uncertainty_note(z: int, near_z: int, coverage: float, config: AlignConfig) -> str | None:
    """What the run reports of section z aligned to section `near_z` with at best
    `coverage` of good flow nodes: too far back to trust, or too little flow, or nothing."""
    if z - near_z > config.trusted_distance:
        return (f"section {z}: aligned to section {near_z}, {z - near_z} sections back (the "
                f"{z - near_z - 1} between are missing or could not serve), too far for its "
                "flows to be trusted: its alignment is uncertain (by several pixels)")
    if coverage < MIN_COVERAGE:
        return (f"section {z}: only {coverage:.0%} of its flow to section {near_z} is good; "
                "its alignment is uncertain")
    return None


def gap_mesh(config: AlignConfig, distance: int) -> mesh_.MeshConfig:
    """The mesh settings of a section whose nearest reference is `distance` sections back:
    its in-section springs `gap_stiffness` times stiffer per section skipped. Across a gap the
    flows follow the tissue over several sections (a flow's error grows faster than the
    distance), so its shape is held closer to the references'."""
    if distance <= 1 or config.gap_stiffness == 1.0:
        return config.mesh
    return replace(config.mesh,
                   k_intra=config.mesh.k_intra * config.gap_stiffness ** (distance - 1))


def remove_z_trend(nodes: np.ndarray, ident: np.ndarray, usable: np.ndarray,
                   degree: int) -> np.ndarray:
    """Maps (z, gy, gx, 2) without the polynomial trend along z (`degree`, fitted over the
    `usable` sections, its constant term kept) of each node's displacement from `ident`
    after each section's mean displacement (its translation) is taken out."""
    zs = np.flatnonzero(usable)
    degree = min(degree, len(zs) - 2)
    if degree < 1:
        return nodes
    u = nodes - ident[None]
    shape = u - u.mean(axis=(1, 2), keepdims=True)
    z = np.arange(len(nodes), dtype=np.float64)
    zc = (z - z[zs].mean()) / max(float(z[zs].std()), 1.0)
    powers = np.stack([zc**k for k in range(degree + 1)], axis=1)
    coef, *_ = np.linalg.lstsq(powers[zs], shape[zs].reshape(len(zs), -1), rcond=None)
    trend = (powers[:, 1:] @ coef[1:]).reshape(u.shape)
    return np.asarray(nodes - trend)


def fill_targets(target: np.ndarray, weight: np.ndarray, ident: np.ndarray, sigma: float,
                 fill: float) -> tuple[np.ndarray, np.ndarray]:
    """Targets (gy, gx, 2) and weights with every node that has no flow given a weak target:
    the displacement of a local affine fit (Gaussian weights, `sigma` nodes) of the nodes that
    have one, at weight `fill` times the largest weight. Section deformations are smooth over
    hundreds of px, so past the last good flows (section edges, masked areas) the section's
    own flows continued linearly are a better guess than the references' shape."""
    good = weight > 0
    if good.sum() < 3 or good.all():
        return target, weight
    gp = np.argwhere(good).astype(np.float64)
    u = (target - ident)[good]
    w_good = weight[good]
    out_t, out_w = target.copy(), weight.copy()
    level = fill * float(weight.max())
    for i, j in np.argwhere(~good):
        d2 = ((gp - (i, j)) ** 2).sum(axis=1)
        w = w_good * np.exp(-0.5 * d2 / sigma**2)
        a = np.column_stack([np.ones(len(gp)), gp - (i, j)]) * np.sqrt(w)[:, None]
        coef, *_ = np.linalg.lstsq(a, u * np.sqrt(w)[:, None], rcond=1e-6)
        out_t[i, j] = ident[i, j] + coef[0]
        out_w[i, j] = level
    return out_t, out_w
