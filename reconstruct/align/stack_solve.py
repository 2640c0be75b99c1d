"""All sections' meshes solved at once: every measured flow a spring in z, both ways.

The sequential pass (`elastic.align_stack`) solves each section against the sections before
it only, so a section's error reaches every section after it and no section hears from the
ones after it. Here the node positions x_z (gy, gx, 2) of every usable section are one linear
least-squares problem, each coordinate on its own:

- **flows**: for every flow measured from reference r to section z, node p of z sits where
  node p of r sits moved by the flow there, x_z(p) - x_r(p) = f(x_r(p)), weighted
  1 / distance^`distance_power` (the flow is sampled at the current x_r, and the problem is
  solved again with the new positions, `iterations` times);
- **bending** (`bend`): the second differences of each section's nodes are small. Section
  deformations are smooth over hundreds of pixels; this costs nothing for a rotation, scale or
  shear (which the true deformations have, independently per section) and carries the mesh
  over nodes without a flow by continuing it linearly;
- **shape** (`shape`): the node-to-neighbour vectors of consecutive usable sections agree. The
  flows follow the tissue's own motion between sections, which changes a section's shape
  locally; this holds it back, as the sequential mesh's springs to the references' shape do,
  but from both sides;
- **gauge**: the mean over the sections of each node's position is set to the identity grid
  after each solve: the aligned frame is the sections' mean frame (true section deformations
  average out), not the first section's as in the sequential pass. Every term above sees only
  differences between sections or is the same for each, so this moves no section against
  another; as a row of the problem it coupled every section with every other, and the
  factorisation grew with their square.

A stack too big to factorise at once (`MAX_COST`) is solved in overlapping windows of
consecutive sections, each against the sections just before it as an earlier window placed
them, then the gauge is set over the whole stack: cost linear in the sections.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spl

from connectome_query.reconstruct.align import flow as flow_
from connectome_query.reconstruct.align.warp import identity_nodes, sample_nodes


@dataclass(frozen=True)
class StackSolveConfig:
    """Weights of the joint solve's terms (a flow one section apart weighs 1 a node)."""

    enabled: bool = True
    bend: float = 1.0
    shape: float = 0.1
    iterations: int = 2
    max_cost: float = 2e7
    """Largest sections x nodes-per-section^2 solved at once (`window`)."""


def _bending(gy: int, gx: int) -> sp.csr_matrix:
    """Second differences of a node field (gy x gx, row-major): along y, along x, mixed."""
    def second(n: int) -> sp.csr_matrix:
        return sp.diags([1.0, -2.0, 1.0], [0, 1, 2], shape=(max(n - 2, 0), n))

    def first(n: int) -> sp.csr_matrix:
        return sp.diags([-1.0, 1.0], [0, 1], shape=(n - 1, n))

    iy, ix = sp.identity(gy), sp.identity(gx)
    return sp.vstack([sp.kron(second(gy), ix), sp.kron(iy, second(gx)),
                      np.sqrt(2.0) * sp.kron(first(gy), first(gx))]).tocsr()


def _edges(gy: int, gx: int) -> sp.csr_matrix:
    """Node-to-neighbour differences: along y, along x and both diagonals."""
    idx = np.arange(gy * gx).reshape(gy, gx)
    pairs = [(idx[:-1], idx[1:]), (idx[:, :-1], idx[:, 1:]), (idx[:-1, :-1], idx[1:, 1:]),
             (idx[:-1, 1:], idx[1:, :-1])]
    a = np.concatenate([p[0].ravel() for p in pairs])
    b = np.concatenate([p[1].ravel() for p in pairs])
    rows = np.arange(len(a))
    return sp.csr_matrix((np.r_[-np.ones(len(a)), np.ones(len(a))],
                          (np.r_[rows, rows], np.r_[a, b])), shape=(len(a), gy * gx))


def flow_step(f: flow_.Flow, at: np.ndarray, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(displacement (gy, gx, 2) the flow gives nodes sitting at `at`, 1 where it is known
    else 0): the flow bilinear over its good nodes, known where they carry half the weight."""
    valid = f.valid[..., None].astype(np.float64)
    num = sample_nodes(np.where(valid > 0, f.yx, 0.0) * valid, at, stride)
    den = sample_nodes(valid, at, stride)
    return num / np.maximum(den, 1e-9), (den[..., 0] >= 0.5).astype(np.float64)


def solve_stack(nodes: np.ndarray, flows: dict[tuple[int, int], flow_.Flow],
                usable: np.ndarray, stride: int, distance_power: float,
                config: StackSolveConfig = StackSolveConfig(),
                window: int | None = None) -> np.ndarray:
    """Node positions (z, gy, gx, 2) of the usable sections solved jointly (module
    docstring), starting from `nodes` (the sequential solution: where flows are sampled
    first); `flows[(z, r)]`: the flow from reference r to section z. Usable sections in no
    flow keep their start; sections that are not usable take the map of the nearest usable
    section before them, as in the sequential pass. With `window`, a stack of more sections
    is solved `window` sections at a time (see `_windows`)."""
    nz, gy, gx, _ = nodes.shape
    zs = np.array(sorted({z for pair in flows for z in pair if usable[z]}), dtype=np.int64)
    if len(zs) < 2:
        return nodes
    ident = identity_nodes((gy, gx), stride)
    x = nodes.copy()
    reach = max(abs(z - r) for z, r in flows)
    solved_any = False
    for free, held in _windows(zs, window or len(zs), reach):
        solved = _solve(x, flows, free, held, stride, distance_power, config,
                        gauge=not len(held))
        if solved is not None:  # else no flow ties these sections: they keep their start
            x, solved_any = solved, True
    if not solved_any:
        return nodes
    x[zs] = x[zs] - x[zs].mean(axis=0) + ident  # the gauge, over the whole stack
    last = -1
    for z in range(nz):
        if usable[z]:
            last = z
        elif last >= 0:
            x[z] = x[last]
    return x


def _windows(zs: np.ndarray, window: int, reach: int
             ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(free sections, held sections) of each solve over a stack in windows: `window`
    consecutive usable sections solved together, the usable sections within `reach` before
    them held where an earlier window put them. Consecutive windows overlap by a quarter
    (at least one section), and each section keeps the answer of the last window it is in,
    so no section's answer comes from the end of a window that had no sections after it
    (but the stack's own end)."""
    if len(zs) <= window:
        return [(zs, zs[:0])]
    step = max(window - max(window // 4, 1), 1)
    out = []
    for a in range(0, len(zs), step):
        free = zs[a:a + window]
        held = zs[:a][zs[:a] >= free[0] - reach]
        out.append((free, held))
        if a + window >= len(zs):
            break
    return out


def _solve(nodes: np.ndarray, flows: dict[tuple[int, int], flow_.Flow], free: np.ndarray,
           held: np.ndarray, stride: int, distance_power: float, config: StackSolveConfig,
           gauge: bool) -> np.ndarray | None:
    """`nodes` with the sections `free` solved jointly against each other and against the
    sections `held` at their positions in `nodes`; None when no flow ties them. With `gauge`,
    the free sections' mean is set to the identity grid after each iteration."""
    _, gy, gx, _ = nodes.shape
    col = {int(z): i for i, z in enumerate(free)}
    fixed_at = {int(z) for z in held}
    n_nodes, n_sec = gy * gx, len(free)
    ident = identity_nodes((gy, gx), stride).reshape(-1, 2)
    fixed = [sp.kron(sp.identity(n_sec), _bending(gy, gx)) * np.sqrt(config.bend)]
    fixed_rhs = [np.zeros((fixed[0].shape[0], 2))]
    if config.shape > 0 and n_sec > 1:
        consecutive = sp.diags([-1.0, 1.0], [0, 1], shape=(n_sec - 1, n_sec))
        fixed.append(sp.kron(consecutive, _edges(gy, gx)) * np.sqrt(config.shape))
        fixed_rhs.append(np.zeros((fixed[-1].shape[0], 2)))
    if config.shape > 0 and len(held):  # the first free section's shape against the last held
        edges = _edges(gy, gx)
        fixed.append(sp.hstack([edges, sp.csr_matrix((edges.shape[0],
                                                      (n_sec - 1) * n_nodes))])
                     * np.sqrt(config.shape))
        fixed_rhs.append(np.sqrt(config.shape) * (edges @ nodes[held[-1]].reshape(-1, 2)))
    # a faint pull to the start: one solution where parts of the stack share no flow
    fixed.append(sp.identity(n_sec * n_nodes) * np.sqrt(RIDGE))
    fixed_rhs.append(np.sqrt(RIDGE) * nodes[free].reshape(-1, 2))
    x = nodes.copy()
    pairs = [(z, r, f) for (z, r), f in flows.items()
             if z in col and (r in col or r in fixed_at)]
    for _ in range(max(config.iterations, 1)):
        rows, cols, vals, rhs = [], [], [], []
        start = 0
        for z, r, f in pairs:
            step, known = flow_step(f, x[r], stride)
            p = np.flatnonzero(known.ravel())
            if not len(p):
                continue
            s = np.sqrt(1.0 / abs(z - r) ** distance_power)
            k = start + np.arange(len(p))
            target = step.reshape(-1, 2)[p]
            rows.append(k)
            cols.append(col[z] * n_nodes + p)
            vals.append(np.full(len(p), s))
            if r in col:
                rows.append(k)
                cols.append(col[r] * n_nodes + p)
                vals.append(np.full(len(p), -s))
            else:  # a held reference: its position is known
                target = target + x[r].reshape(-1, 2)[p]
            rhs.append(s * target)
            start += len(p)
        if not start:
            return None
        a_flow = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows),
                                                       np.concatenate(cols))),
                               shape=(start, n_sec * n_nodes))
        a = sp.vstack([a_flow, *fixed]).tocsr()
        b = np.vstack([*rhs, *fixed_rhs])
        solve = spl.factorized((a.T @ a).tocsc())
        sol = np.stack([solve(a.T @ b[:, k]) for k in range(2)], axis=-1)
        sol = sol.reshape(n_sec, n_nodes, 2)
        if gauge:
            sol = sol - sol.mean(axis=0) + ident
        x[free] = sol.reshape(n_sec, gy, gx, 2)
    return x


RIDGE = 1e-6
"""Weight of each node's pull to its start position (a flow one section apart weighs 1)."""
MAX_COST = StackSolveConfig.max_cost
"""Largest sections x nodes-per-section^2 solved at once by default (the sparse factorisation's
cost grows about so: 16 sections of 32 x 32 nodes take about 20 s, 512 of 8 x 8 about 3 s on one
core). A bigger stack is solved in windows of as many sections as this allows."""
MIN_WINDOW = 4
"""Fewest sections a window may hold: with fewer, each section hears too little of its
neighbours for the joint solve to improve on the sequential one, which is kept."""


def window(n_sections: int, grid: tuple[int, int], max_cost: float = MAX_COST) -> int | None:
    """Sections `solve_stack` solves at once for a stack this big: all of them when the cost
    allows (`max_cost`, see `MAX_COST`), else the most it allows; None when that is under
    `MIN_WINDOW` (sections too big for the joint solve)."""
    per = int(max_cost // float(grid[0] * grid[1]) ** 2)
    if per >= n_sections:
        return n_sections
    return per if per >= MIN_WINDOW else None
