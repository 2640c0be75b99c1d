"""Elastic alignment of a stack: flows between neighbouring sections, meshes relaxed in
order along z, maps composed.

The first usable section is the reference (its map is the identity). Each next section gets a
flow against the last *reference* section before it (missing sections are skipped; damaged
ones, such as blurred sections, are aligned but never serve as a reference). Maps compose:
node p of the aligned frame shows the reference at x_ref(p), and the flow says the section
shows that place at x_ref(p) + f(x_ref(p)), which is the node's target; the mesh, held to the
reference's shape, relaxes against those targets (`mesh.relax`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from connectome_query.reconstruct.align import flow as flow_
from connectome_query.reconstruct.align import mesh as mesh_
from connectome_query.reconstruct.align.warp import identity_nodes, sample_nodes
from connectome_query.reconstruct.progress import Tick, no_progress


@dataclass(frozen=True)
class AlignConfig:
    """Flow grid and mesh settings."""

    stride: int = 32
    patch: int = 128
    max_shift: int = 24
    mesh: mesh_.MeshConfig = field(default_factory=mesh_.MeshConfig)


@dataclass
class Maps:
    """Solved node positions per section (z, gy, gx, 2) and what was found on the way."""

    nodes: np.ndarray
    stride: int
    reference: np.ndarray  # (z,) int: the section each was aligned to (-1: none)
    flow_coverage: np.ndarray  # (z,) fraction of nodes with a good flow
    steps: np.ndarray  # (z,) relaxation steps
    notes: list[str] = field(default_factory=list)


def align_stack(section: Callable[[int], np.ndarray], mask: Callable[[int], np.ndarray],
                n_sections: int, usable: np.ndarray, reference_ok: np.ndarray,
                shape: tuple[int, int], config: AlignConfig = AlignConfig(),
                tick: Tick = no_progress) -> Maps:
    """Align `n_sections` stitched sections (read through `section(z)`, defect masks through
    `mask(z)`, bool). `usable[z]`: the section can be aligned; `reference_ok[z]`: later
    sections may be aligned to it."""
    grid = flow_.grid_shape(shape, config.stride)
    ident = identity_nodes(grid, config.stride)
    nodes = np.repeat(ident[None], n_sections, axis=0)
    reference = np.full(n_sections, -1, np.int64)
    coverage = np.zeros(n_sections)
    steps = np.zeros(n_sections, np.int64)
    notes: list[str] = []
    ref_z: int | None = None
    ref_img: np.ndarray | None = None
    ref_mask: np.ndarray | None = None
    for z in range(n_sections):
        tick(f"aligning section {z}", z / max(n_sections, 1))
        if not usable[z]:
            if ref_z is not None:
                nodes[z] = nodes[ref_z]
            continue
        img, m = section(z), mask(z)
        if ref_z is None or ref_img is None or ref_mask is None:
            if reference_ok[z]:
                ref_z, ref_img, ref_mask = z, img, m
                reference[z] = z
                coverage[z] = 1.0
            continue
        f = flow_.section_flow(ref_img, img, config.stride, config.patch, config.max_shift,
                               mask=ref_mask | m)
        coverage[z] = float(f.valid.mean())
        prev = nodes[ref_z]
        # the flow at the reference's node positions: bilinear over the good nodes only
        valid = f.valid[..., None].astype(np.float64)
        num = sample_nodes(np.where(valid > 0, f.yx, 0.0) * valid, prev, config.stride)
        den = sample_nodes(valid, prev, config.stride)
        inc = num / np.maximum(den, 1e-9)
        weight = (den[..., 0] >= 0.5).astype(np.float64)
        target = prev + inc
        good = weight > 0
        # start from the reference moved by the flows' median; nodes without a good flow are
        # carried by the mesh, never by a filled-in guess
        shift = np.median(inc[good], axis=0) if good.any() else f.shift
        x, n_steps, _ = mesh_.relax(target, weight, prev, prev + shift, config.mesh)
        nodes[z], steps[z], reference[z] = x, n_steps, ref_z
        if coverage[z] < 0.2:
            notes.append(f"section {z}: only {coverage[z]:.0%} of its flow to section "
                         f"{ref_z} is good; its alignment is uncertain")
        if reference_ok[z]:
            ref_z, ref_img, ref_mask = z, img, m
    if ref_z is None:
        notes.append("no section could serve as the alignment reference; maps are identity")
    # sections before the first reference keep the identity; skipped ones the last map
    return Maps(nodes, config.stride, reference, coverage, steps, notes)
