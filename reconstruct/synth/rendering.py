"""Rendering: a plan's image, labels, compartments and clefts for a range of sections.

Volumes of any size are produced slab by slab (each with a halo of sections for membranes and
clefts), so the whole is never held in memory; slabs agree exactly with the whole volume.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.ndimage as ndi

from connectome_query.reconstruct.synth.plan import Plan

_CLEFT_RADIUS_NM = 60.0
_VESICLE_R_NM = 18.0


@dataclass
class Slab:
    """Rendered sections [z0, z1) of a plan."""

    z0: int
    image: np.ndarray  # uint8 (z, y, x)
    labels: np.ndarray  # uint64 ground-truth segmentation
    compartments: np.ndarray  # uint8 compartment codes
    clefts: np.ndarray  # uint64 synapse id (1-based index into plan.synapses) or 0
    cleft_stats: np.ndarray  # (S, 4+5): count, sum z, sum y, sum x, post comp counts 0..4


def _stamp_into(best: np.ndarray, lab: np.ndarray, comp: np.ndarray, z0: int, c: np.ndarray,
                r: float, vs: np.ndarray, label: int, code: int) -> None:
    shape = np.array(best.shape)
    ci = c / vs
    rv = r / vs
    lo = np.maximum(np.floor(ci - rv).astype(int) - np.array([z0, 0, 0]), 0)
    hi = np.minimum(np.ceil(ci + rv).astype(int) + 1 - np.array([z0, 0, 0]), shape)
    if np.any(hi <= lo):
        return
    dz = ((np.arange(lo[0], hi[0]) + z0) * vs[0] - c[0]) ** 2
    dy = (np.arange(lo[1], hi[1]) * vs[1] - c[1]) ** 2
    dx = (np.arange(lo[2], hi[2]) * vs[2] - c[2]) ** 2
    nd = (dz[:, None, None] + dy[None, :, None] + dx[None, None, :]) / (r * r)
    sl = (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))
    sub = best[sl]
    m = nd < sub
    sub[m] = nd[m]
    lab[sl][m] = label
    comp[sl][m] = code


def _section_noise(seed: int, z: int, shape: tuple[int, int], sigma: float) -> np.ndarray:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 99, z]))
    n = rng.standard_normal(shape, dtype=np.float32)
    if sigma > 0:
        n = ndi.gaussian_filter(n, sigma)
        n /= max(float(n.std()), 1e-6)
    return n


def vesicle_mask(plan: Plan, lab: np.ndarray, h0: int, h1: int) -> np.ndarray:
    """Voxels (of `lab`, sections h0..h1) darkened by synaptic vesicles: small balls inside
    the presynaptic bouton, and only there (a ball near the membrane is cut by it, never
    spills into the neighbouring cell). Each voxel belongs to its nearest vesicle."""
    out = np.zeros(lab.shape, bool)
    if not len(plan.vesicles):
        return out
    vs = np.asarray(plan.config.voxel_size_zyx, float)
    vz = plan.vesicles[:, 0] / vs[0]
    vsel = np.nonzero((vz >= h0 - 1) & (vz <= h1 + 1))[0]
    vb = np.full(lab.shape, np.inf, np.float32)
    vl = np.zeros(lab.shape, np.uint64)
    vc = np.zeros(lab.shape, np.uint8)
    for i in vsel:
        _stamp_into(vb, vl, vc, h0, plan.vesicles[i], _VESICLE_R_NM * 1.6, vs,
                    int(plan.vesicle_label[i]), 1)
    return (vb <= 1.0) & (lab != 0) & (lab == vl)


def _cells(plan: Plan, h0: int, h1: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels, compartments) of sections [h0, h1): each voxel goes to the stamp nearest
    to it relative to the stamp's radius, none outside every stamp."""
    cfg = plan.config
    vs = np.array(cfg.voxel_size_zyx, float)
    shp = (h1 - h0, *cfg.shape_zyx[1:])
    best = np.full(shp, np.inf, np.float32)
    lab = np.zeros(shp, np.uint64)
    comp = np.zeros(shp, np.uint8)
    st = plan.stamps
    zc = st[:, 0] / vs[0]
    rz = st[:, 3] / vs[0]
    sel = np.nonzero((zc + rz >= h0 - 1) & (zc - rz <= h1 + 1))[0]
    for i in sel:
        _stamp_into(best, lab, comp, h0, st[i, :3], float(st[i, 3]), vs,
                    int(plan.stamp_label[i]), int(plan.stamp_comp[i]))
    outside = best > 1.0
    lab[outside] = 0
    comp[outside] = 0
    return lab, comp


def _membranes(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(in-plane membranes, z faces) of the cells: voxels of a cell with a neighbour of
    another label in-plane (dark in the image), or along z only (lighter: partial
    volume)."""
    fg = lab != 0
    mem = np.zeros(lab.shape, bool)
    mem[:, 1:, :] |= lab[:, 1:, :] != lab[:, :-1, :]
    mem[:, :-1, :] |= lab[:, 1:, :] != lab[:, :-1, :]
    mem[:, :, 1:] |= lab[:, :, 1:] != lab[:, :, :-1]
    mem[:, :, :-1] |= lab[:, :, 1:] != lab[:, :, :-1]
    zf = np.zeros(lab.shape, bool)
    zf[1:] |= lab[1:] != lab[:-1]
    zf[:-1] |= lab[1:] != lab[:-1]
    mem &= fg
    zf &= fg & ~mem
    return mem, zf


def _clefts(plan: Plan, lab: np.ndarray, comp: np.ndarray, z0: int, z1: int,
            h0: int) -> tuple[np.ndarray, np.ndarray]:
    """(cleft ids of sections [h0, h0 + len(lab)), per-synapse statistics of its cleft
    voxels in the slab's own sections [z0, z1): count, sums of z, y, x, and counts of
    the postsynaptic compartments 0..4).

    A cleft is the pair of facing membranes within `_CLEFT_RADIUS_NM` of the contact,
    widened in-plane by one voxel inside the two cells."""
    cfg = plan.config
    vs = np.array(cfg.voxel_size_zyx, float)
    nz, ny, nx = cfg.shape_zyx
    h1 = h0 + lab.shape[0]
    clefts = np.zeros(lab.shape, np.uint64)
    n_syn = len(plan.synapses)
    stats = np.zeros((n_syn, 9), np.float64)
    rc = _CLEFT_RADIUS_NM / vs
    cross = ndi.generate_binary_structure(3, 1)
    for s in range(n_syn):
        c = plan.synapses[s, :3]
        ci = c / vs
        if ci[0] + rc[0] + 1 < h0 or ci[0] - rc[0] - 1 >= h1:
            continue
        lo = np.maximum(np.floor(ci - rc).astype(int) - 2, 0)
        hi = np.minimum(np.ceil(ci + rc).astype(int) + 3, (nz, ny, nx))
        lo[0] = max(lo[0], h0)
        hi[0] = min(hi[0], h1)
        if np.any(hi <= lo):
            continue
        sl = (slice(lo[0] - h0, hi[0] - h0), slice(lo[1], hi[1]), slice(lo[2], hi[2]))
        sub = lab[sl]
        pre = sub == plan.synapse_pre[s]
        post = sub == plan.synapse_post[s]
        if not pre.any() or not post.any():
            continue
        pa = pre & ndi.binary_dilation(post, cross)
        qa = post & ndi.binary_dilation(pre, cross)
        zz, yy, xx = np.meshgrid(np.arange(lo[0], hi[0]) * vs[0] - c[0],
                                 np.arange(lo[1], hi[1]) * vs[1] - c[1],
                                 np.arange(lo[2], hi[2]) * vs[2] - c[2], indexing="ij")
        near = zz**2 + yy**2 + xx**2 <= _CLEFT_RADIUS_NM**2
        cl = (pa | qa) & near
        plane = np.zeros((1, 3, 3), bool)
        plane[0, 1, :] = plane[0, :, 1] = True
        cl = ndi.binary_dilation(cl, plane) & (pre | post) & near
        csub = clefts[sl]
        csub[cl] = s + 1
        own = np.zeros_like(cl)
        own[max(z0 - lo[0], 0):max(z1 - lo[0], 0)] = True
        cl_own = cl & own
        k = int(cl_own.sum())
        if k:
            stats[s, 0] += k
            stats[s, 1] += float(((zz + c[0])[cl_own]).sum())
            stats[s, 2] += float(((yy + c[1])[cl_own]).sum())
            stats[s, 3] += float(((xx + c[2])[cl_own]).sum())
            pc = comp[sl][qa & near & own]
            stats[s, 4:9] += np.bincount(pc, minlength=5)[:5]
    return clefts, stats


def _finish(plan: Plan, sec: np.ndarray, z: int) -> np.ndarray:
    """A rendered section with its drift (gain, offset) and artefacts, as uint8."""
    sec = sec * plan.gain[z] + plan.offset[z]
    if z in plan.missing:
        sec[:] = 0.02
    if z in plan.shifts:
        sec = ndi.shift(sec, plan.shifts[z], order=0, mode="nearest")
    return np.clip(sec * 255.0, 0, 255).astype(np.uint8)


def _image(plan: Plan, lab: np.ndarray, clefts: np.ndarray, z0: int, z1: int,
           h0: int) -> np.ndarray:
    """The EM image (uint8) of sections [z0, z1) in the plan's style: cytoplasm, membranes,
    vesicle clouds and clefts at their intensities, blurred, textured, with the section's
    noise, drift and artefacts (missing or shifted sections)."""
    if plan.config.style == "b":
        return _image_b(plan, lab, clefts, z0, z1, h0)
    cfg = plan.config
    ny, nx = cfg.shape_zyx[1:]
    fg = lab != 0
    mem, zf = _membranes(lab)
    ves_mask = vesicle_mask(plan, lab, h0, h0 + lab.shape[0]) & (clefts == 0)
    noisy = cfg.preset == "noisy"
    w_amp, c_amp, t_amp = (0.08, 0.06, 0.05) if noisy else (0.035, 0.03, 0.04)
    img = np.empty(lab.shape, np.float32)
    img[:] = 0.56
    img[fg] = 0.80
    img[zf] = 0.62
    img[mem] = 0.22
    img[ves_mask] = 0.48
    img[clefts != 0] = 0.10
    out = np.empty((z1 - z0, ny, nx), np.uint8)
    for z in range(z0, z1):
        k = z - h0
        sec = ndi.gaussian_filter(img[k], 0.6)
        tex = _section_noise(cfg.seed, z * 3 + 1, (ny, nx), 1.5)
        sec += np.where(fg[k], t_amp, t_amp * 0.7) * tex
        sec += c_amp * _section_noise(cfg.seed, z * 3 + 2, (ny, nx), 2.5)
        sec += w_amp * _section_noise(cfg.seed, z * 3 + 3, (ny, nx), 0.0)
        out[z - z0] = _finish(plan, sec, z)
    return out


_B_STREAM = 1 << 40  # style B's noise streams, apart from style A's


def _image_b(plan: Plan, lab: np.ndarray, clefts: np.ndarray, z0: int, z1: int,
             h0: int) -> np.ndarray:
    """Style B: the same tissue imaged otherwise. Contrast inverted and compressed
    (membranes and clefts bright on a grey cytoplasm, grey levels spanning about half of
    style A's), membranes one pixel thicker on each side, dark organelle-like blobs inside
    the cells, a wider blur (sigma 1.3 px against 0.6), and a noise of other spectrum (a
    slow, uneven illumination at sigma 6 px and a fine grain at 0.8 px instead of style
    A's white noise and 2.5 px mottle). Drift and artefacts are style A's."""
    cfg = plan.config
    ny, nx = cfg.shape_zyx[1:]
    fg = lab != 0
    mem, zf = _membranes(lab)
    plane = np.zeros((1, 3, 3), bool)
    plane[0, 1, :] = plane[0, :, 1] = True
    thick = mem | (ndi.binary_dilation(mem, plane) & fg)
    ves_mask = vesicle_mask(plan, lab, h0, h0 + lab.shape[0]) & (clefts == 0)
    amp = 1.4 if cfg.preset == "noisy" else 1.0
    img = np.empty(lab.shape, np.float32)
    img[:] = 0.50
    img[fg] = 0.34
    img[zf] = 0.43
    img[thick] = 0.70
    img[ves_mask] = 0.47
    img[clefts != 0] = 0.72
    out = np.empty((z1 - z0, ny, nx), np.uint8)
    for z in range(z0, z1):
        k = z - h0
        s = _B_STREAM + z * 4
        blobs = _section_noise(cfg.seed, s, (ny, nx), 2.0) > 1.1
        sec = img[k] - 0.08 * (blobs & fg[k] & ~thick[k])
        sec = ndi.gaussian_filter(sec, 1.3)
        sec += amp * 0.04 * _section_noise(cfg.seed, s + 1, (ny, nx), 6.0)
        sec += amp * 0.035 * _section_noise(cfg.seed, s + 2, (ny, nx), 0.8)
        out[z - z0] = _finish(plan, sec, z)
    return out


def render_slab(plan: Plan, z0: int, z1: int) -> Slab:
    """Render sections [z0, z1): image, labels, compartments, clefts (no I/O)."""
    h0, h1 = max(z0 - 2, 0), min(z1 + 2, plan.config.shape_zyx[0])  # halo: membranes, clefts
    lab, comp = _cells(plan, h0, h1)
    clefts, stats = _clefts(plan, lab, comp, z0, z1, h0)
    image = _image(plan, lab, clefts, z0, z1, h0)
    crop = slice(z0 - h0, z1 - h0)
    return Slab(z0=z0, image=image, labels=lab[crop].copy(), compartments=comp[crop].copy(),
                clefts=clefts[crop].copy(), cleft_stats=stats)


def render(plan: Plan, slab_depth: int = 32) -> Slab:
    """Render the whole volume in memory (small volumes; big ones go slab by slab)."""
    nz = plan.config.shape_zyx[0]
    parts = [render_slab(plan, z, min(z + slab_depth, nz)) for z in range(0, nz, slab_depth)]
    return Slab(z0=0, image=np.concatenate([p.image for p in parts]),
                labels=np.concatenate([p.labels for p in parts]),
                compartments=np.concatenate([p.compartments for p in parts]),
                clefts=np.concatenate([p.clefts for p in parts]),
                cleft_stats=np.sum([p.cleft_stats for p in parts], axis=0))

