"""Rendering: a plan's image, labels, compartments and clefts for a box of the volume.

Volumes of any size are produced box by box (`render_box`: a 3-D block, or a slab of whole
sections, each rendered with a halo for membranes, clefts, blur and shifted sections), so the
whole is never held in memory; boxes agree exactly with the whole volume. Section noise is one
random field per section up to `WHOLE_NOISE` pixels a side; larger sections draw it in tiles of
`NOISE_TILE` pixels, each its own random stream, so that a box draws only the tiles it meets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.ndimage as ndi

from connectome_query.reconstruct.synth.plan import Plan

_CLEFT_RADIUS_NM = 60.0
_VESICLE_R_NM = 18.0
HALO = (2, 16, 16)
"""Sections and pixels a box is rendered with around it: z faces and clefts need 1-2
sections; in-plane, membranes and clefts 2 px, the blur 5 px, a shifted section 7 px."""
WHOLE_NOISE = 256
"""Sections up to this many pixels a side draw each noise field as one random stream."""
NOISE_TILE = 64
"""Larger sections draw it in tiles of this many pixels a side, a stream each."""

Triple = tuple[int, int, int]


@dataclass
class Slab:
    """Rendered sections [z0, z1) of a plan."""

    z0: int
    image: np.ndarray  # uint8 (z, y, x)
    labels: np.ndarray  # uint64 ground-truth segmentation
    compartments: np.ndarray  # uint8 compartment codes
    clefts: np.ndarray  # uint64 synapse id (1-based index into plan.synapses) or 0
    cleft_stats: np.ndarray  # (S, 4+5): count, sums of the voxel indices z, y, x (exact,
    # so that boxes add up to the whole in any order), post comp counts 0..4


def _stamp_into(best: np.ndarray, lab: np.ndarray, comp: np.ndarray, origin: Triple,
                c: np.ndarray, r: float, vs: np.ndarray, label: int, code: int) -> None:
    shape = np.array(best.shape)
    o = np.array(origin)
    ci = c / vs
    rv = r / vs
    lo = np.maximum(np.floor(ci - rv).astype(int) - o, 0)
    hi = np.minimum(np.ceil(ci + rv).astype(int) + 1 - o, shape)
    if np.any(hi <= lo):
        return
    dz = ((np.arange(lo[0], hi[0]) + o[0]) * vs[0] - c[0]) ** 2
    dy = ((np.arange(lo[1], hi[1]) + o[1]) * vs[1] - c[1]) ** 2
    dx = ((np.arange(lo[2], hi[2]) + o[2]) * vs[2] - c[2]) ** 2
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


def _noise(seed: int, stream: int, section: tuple[int, int], lo: tuple[int, int],
           hi: tuple[int, int], sigma: float) -> np.ndarray:
    """Pixels [lo, hi) (y, x) of a section's noise field `stream`: white noise blurred by
    `sigma` px, scaled to unit spread. Drawn whole for small sections (scaled by its own
    spread); for larger ones only the tiles the pixels and the blur's reach meet (scaled by
    the spread blurred white noise has)."""
    (y0, x0), (y1, x1) = lo, hi
    if max(section) <= WHOLE_NOISE:
        return _section_noise(seed, stream, section, sigma)[y0:y1, x0:x1]
    r = int(4.0 * sigma + 0.5) if sigma > 0 else 0
    gy0, gx0 = max(y0 - r, 0), max(x0 - r, 0)
    gy1, gx1 = min(y1 + r, section[0]), min(x1 + r, section[1])
    n = _white_tiles(seed, stream, (gy0, gx0), (gy1, gx1))
    if sigma > 0:
        n = ndi.gaussian_filter(n, sigma)
        n /= _blurred_spread(sigma)
    return n[y0 - gy0:y1 - gy0, x0 - gx0:x1 - gx0]


def _white_tiles(seed: int, stream: int, lo: tuple[int, int],
                 hi: tuple[int, int]) -> np.ndarray:
    """Pixels [lo, hi) of a section's white noise drawn in `NOISE_TILE` tiles."""
    t = NOISE_TILE
    out = np.empty((hi[0] - lo[0], hi[1] - lo[1]), np.float32)
    for ty in range(lo[0] // t, (hi[0] - 1) // t + 1):
        for tx in range(lo[1] // t, (hi[1] - 1) // t + 1):
            rng = np.random.default_rng(np.random.SeedSequence([seed, 99, stream, ty, tx]))
            tile = rng.standard_normal((t, t), dtype=np.float32)
            ay, by = max(ty * t, lo[0]), min((ty + 1) * t, hi[0])
            ax, bx = max(tx * t, lo[1]), min((tx + 1) * t, hi[1])
            out[ay - lo[0]:by - lo[0], ax - lo[1]:bx - lo[1]] = \
                tile[ay - ty * t:by - ty * t, ax - tx * t:bx - tx * t]
    return out


def _blurred_spread(sigma: float) -> float:
    """Standard deviation of unit white noise after `ndi.gaussian_filter` (2-D, default
    truncation): the sum of the squared 1-D kernel weights, once per axis."""
    r = int(4.0 * sigma + 0.5)
    x = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * x * x / (sigma * sigma))
    k /= k.sum()
    return float((k * k).sum())


def vesicle_mask(plan: Plan, lab: np.ndarray, h0: int, h1: int,
                 yx0: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Voxels (of `lab`: sections h0..h1, pixels from `yx0`) darkened by synaptic vesicles:
    small balls inside the presynaptic bouton, and only there (a ball near the membrane is
    cut by it, never spills into the neighbouring cell). Each voxel belongs to its nearest
    vesicle."""
    out = np.zeros(lab.shape, bool)
    if not len(plan.vesicles):
        return out
    vs = np.asarray(plan.config.voxel_size_zyx, float)
    v = plan.vesicles / vs
    lo = np.array([h0 - 1, yx0[0] - 2, yx0[1] - 2])
    hi = np.array([h1 + 1, yx0[0] + lab.shape[1] + 2, yx0[1] + lab.shape[2] + 2])
    vsel = np.nonzero(np.all((v >= lo) & (v <= hi), axis=1))[0]
    vb = np.full(lab.shape, np.inf, np.float32)
    vl = np.zeros(lab.shape, np.uint64)
    vc = np.zeros(lab.shape, np.uint8)
    for i in vsel:
        _stamp_into(vb, vl, vc, (h0, *yx0), plan.vesicles[i], _VESICLE_R_NM * 1.6, vs,
                    int(plan.vesicle_label[i]), 1)
    return (vb <= 1.0) & (lab != 0) & (lab == vl)


def _cells(plan: Plan, lo: Triple, hi: Triple) -> tuple[np.ndarray, np.ndarray]:
    """(labels, compartments) of the voxels [lo, hi): each voxel goes to the stamp nearest
    to it relative to the stamp's radius, none outside every stamp."""
    cfg = plan.config
    vs = np.array(cfg.voxel_size_zyx, float)
    shp = (hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2])
    best = np.full(shp, np.inf, np.float32)
    lab = np.zeros(shp, np.uint64)
    comp = np.zeros(shp, np.uint8)
    st = plan.stamps
    c = st[:, :3] / vs
    r = st[:, 3:4] / vs
    sel = np.nonzero(np.all((c + r >= np.array(lo) - 1) & (c - r <= np.array(hi) + 1),
                            axis=1))[0]
    for i in sel:
        _stamp_into(best, lab, comp, lo, st[i, :3], float(st[i, 3]), vs,
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


def _clefts(plan: Plan, lab: np.ndarray, comp: np.ndarray, at: Triple, lo: Triple,
            hi: Triple, ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(cleft ids of the voxels of `lab` (its first voxel at `at`), per-synapse statistics of
    its cleft voxels in the box's own voxels [lo, hi): count, sums of the z, y, x indices,
    and counts of the postsynaptic compartments 0..4).

    A cleft is the pair of facing membranes within `_CLEFT_RADIUS_NM` of the contact,
    widened in-plane by one voxel inside the two cells. `ids`: each synapse's id less one
    (default its row)."""
    cfg = plan.config
    vs = np.array(cfg.voxel_size_zyx, float)
    g0 = np.array(at)
    g1 = g0 + np.array(lab.shape)
    clefts = np.zeros(lab.shape, np.uint64)
    n_syn = len(plan.synapses)
    ids = np.arange(n_syn) if ids is None else ids
    stats = np.zeros((n_syn, 9), np.float64)
    rc = _CLEFT_RADIUS_NM / vs
    cross = ndi.generate_binary_structure(3, 1)
    plane = np.zeros((1, 3, 3), bool)
    plane[0, 1, :] = plane[0, :, 1] = True
    for s in range(n_syn):
        c = plan.synapses[s, :3]
        ci = c / vs
        if ci[0] + rc[0] + 1 < g0[0] or ci[0] - rc[0] - 1 >= g1[0]:
            continue
        a = np.maximum(np.floor(ci - rc).astype(int) - 2, g0)
        b = np.minimum(np.ceil(ci + rc).astype(int) + 3, g1)
        if np.any(b <= a):
            continue
        sl = tuple(slice(a[k] - g0[k], b[k] - g0[k]) for k in range(3))
        sub = lab[sl]
        pre = sub == plan.synapse_pre[s]
        post = sub == plan.synapse_post[s]
        if not pre.any() or not post.any():
            continue
        pa = pre & ndi.binary_dilation(post, cross)
        qa = post & ndi.binary_dilation(pre, cross)
        iz, iy, ix = (np.arange(a[k], b[k]) for k in range(3))
        zz, yy, xx = np.meshgrid(iz * vs[0] - c[0], iy * vs[1] - c[1], ix * vs[2] - c[2],
                                 indexing="ij")
        near = zz**2 + yy**2 + xx**2 <= _CLEFT_RADIUS_NM**2
        cl = (pa | qa) & near
        cl = ndi.binary_dilation(cl, plane) & (pre | post) & near
        clefts[sl][cl] = ids[s] + 1
        own = np.zeros_like(cl)
        own[tuple(slice(max(lo[k] - a[k], 0), max(hi[k] - a[k], 0)) for k in range(3))] = True
        cl_own = cl & own
        k = int(cl_own.sum())
        if k:
            wz, wy, wx = np.nonzero(cl_own)
            stats[s, 0] += k
            stats[s, 1] += float(iz[wz].sum())
            stats[s, 2] += float(iy[wy].sum())
            stats[s, 3] += float(ix[wx].sum())
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


def _image(plan: Plan, lab: np.ndarray, clefts: np.ndarray, at: Triple, lo: Triple,
           hi: Triple) -> np.ndarray:
    """The EM image (uint8) of the box [lo, hi) in the plan's style, from the labels and
    clefts of a box around it (first voxel at `at`): cytoplasm, membranes, vesicle clouds
    and clefts at their intensities, blurred, textured, with the section's noise, drift and
    artefacts (missing or shifted sections)."""
    if plan.config.style == "b":
        return _image_b(plan, lab, clefts, at, lo, hi)
    cfg = plan.config
    fg = lab != 0
    mem, zf = _membranes(lab)
    ves_mask = vesicle_mask(plan, lab, at[0], at[0] + lab.shape[0], at[1:]) & (clefts == 0)
    noisy = cfg.preset == "noisy"
    w_amp, c_amp, t_amp = (0.08, 0.06, 0.05) if noisy else (0.035, 0.03, 0.04)
    img = np.empty(lab.shape, np.float32)
    img[:] = 0.56
    img[fg] = 0.80
    img[zf] = 0.62
    img[mem] = 0.22
    img[ves_mask] = 0.48
    img[clefts != 0] = 0.10
    out = np.empty((hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]), np.uint8)
    for z in range(lo[0], hi[0]):
        k = z - at[0]
        sec = ndi.gaussian_filter(img[k], 0.6)
        tex = _box_noise(plan, z * 3 + 1, at, lab.shape, 1.5)
        sec += np.where(fg[k], t_amp, t_amp * 0.7) * tex
        sec += c_amp * _box_noise(plan, z * 3 + 2, at, lab.shape, 2.5)
        sec += w_amp * _box_noise(plan, z * 3 + 3, at, lab.shape, 0.0)
        out[z - lo[0]] = _crop(_finish(plan, sec, z), at, lo, hi)
    return out


def _box_noise(plan: Plan, stream: int, at: Triple, shape: tuple[int, ...],
               sigma: float) -> np.ndarray:
    """A noise field (`_noise`) over the in-plane extent of a box."""
    cfg = plan.config
    return _noise(cfg.seed, stream, cfg.shape_zyx[1:], at[1:],
                  (at[1] + shape[1], at[2] + shape[2]), sigma)


def _crop(sec: np.ndarray, at: Triple, lo: Triple, hi: Triple) -> np.ndarray:
    """The pixels [lo, hi) (y, x) of a section whose first pixel is at `at`."""
    return sec[lo[1] - at[1]:hi[1] - at[1], lo[2] - at[2]:hi[2] - at[2]]


_B_STREAM = 1 << 40  # style B's noise streams, apart from style A's


def _image_b(plan: Plan, lab: np.ndarray, clefts: np.ndarray, at: Triple, lo: Triple,
             hi: Triple) -> np.ndarray:
    """Style B: the same tissue imaged otherwise. Contrast inverted and compressed
    (membranes and clefts bright on a grey cytoplasm, grey levels spanning about half of
    style A's), membranes one pixel thicker on each side, dark organelle-like blobs inside
    the cells, a wider blur (sigma 1.3 px against 0.6), and a noise of other spectrum (a
    slow, uneven illumination at sigma 6 px and a fine grain at 0.8 px instead of style
    A's white noise and 2.5 px mottle). Drift and artefacts are style A's."""
    cfg = plan.config
    fg = lab != 0
    mem, zf = _membranes(lab)
    plane = np.zeros((1, 3, 3), bool)
    plane[0, 1, :] = plane[0, :, 1] = True
    thick = mem | (ndi.binary_dilation(mem, plane) & fg)
    ves_mask = vesicle_mask(plan, lab, at[0], at[0] + lab.shape[0], at[1:]) & (clefts == 0)
    amp = 1.4 if cfg.preset == "noisy" else 1.0
    img = np.empty(lab.shape, np.float32)
    img[:] = 0.50
    img[fg] = 0.34
    img[zf] = 0.43
    img[thick] = 0.70
    img[ves_mask] = 0.47
    img[clefts != 0] = 0.72
    out = np.empty((hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]), np.uint8)
    for z in range(lo[0], hi[0]):
        k = z - at[0]
        s = _B_STREAM + z * 4
        blobs = _box_noise(plan, s, at, lab.shape, 2.0) > 1.1
        sec = img[k] - 0.08 * (blobs & fg[k] & ~thick[k])
        sec = ndi.gaussian_filter(sec, 1.3)
        sec += amp * 0.04 * _box_noise(plan, s + 1, at, lab.shape, 6.0)
        sec += amp * 0.035 * _box_noise(plan, s + 2, at, lab.shape, 0.8)
        out[z - lo[0]] = _crop(_finish(plan, sec, z), at, lo, hi)
    return out


def render_box(plan: Plan, lo: Triple, hi: Triple, synapse_ids: np.ndarray | None = None
               ) -> Slab:
    """Render the voxels [lo, hi): image, labels, compartments, clefts (no I/O), from the
    box grown by `HALO` (clipped to the volume). `plan` may hold only the stamps, synapses
    and vesicles near the box (`synapse_ids`: the ids less one of its synapses)."""
    shape = plan.config.shape_zyx
    at = tuple(max(a - h, 0) for a, h in zip(lo, HALO, strict=True))
    to = tuple(min(b + h, n) for b, h, n in zip(hi, HALO, shape, strict=True))
    g0: Triple = (at[0], at[1], at[2])
    lab, comp = _cells(plan, g0, (to[0], to[1], to[2]))
    clefts, stats = _clefts(plan, lab, comp, g0, lo, hi, synapse_ids)
    image = _image(plan, lab, clefts, g0, lo, hi)
    crop = tuple(slice(a - g, b - g) for a, b, g in zip(lo, hi, g0, strict=True))
    return Slab(z0=lo[0], image=image, labels=lab[crop].copy(),
                compartments=comp[crop].copy(), clefts=clefts[crop].copy(), cleft_stats=stats)


def render_slab(plan: Plan, z0: int, z1: int) -> Slab:
    """Render sections [z0, z1): image, labels, compartments, clefts (no I/O)."""
    _, ny, nx = plan.config.shape_zyx
    return render_box(plan, (z0, 0, 0), (z1, ny, nx))


def render(plan: Plan, slab_depth: int = 32) -> Slab:
    """Render the whole volume in memory (small volumes; big ones go slab by slab)."""
    nz = plan.config.shape_zyx[0]
    parts = [render_slab(plan, z, min(z + slab_depth, nz)) for z in range(0, nz, slab_depth)]
    return Slab(z0=0, image=np.concatenate([p.image for p in parts]),
                labels=np.concatenate([p.labels for p in parts]),
                compartments=np.concatenate([p.compartments for p in parts]),
                clefts=np.concatenate([p.clefts for p in parts]),
                cleft_stats=np.sum([p.cleft_stats for p in parts], axis=0))
