"""Synthetic EM volumes with ground truth (pure logic, no I/O).

A volume is described by a `Plan` (cells, their skeletons as chains of ball "stamps",
synapses, vesicles, per-section artefacts), made once from the seed. `render_slab` turns
the plan into image, segmentation, compartments and clefts for a range of sections, so
volumes of any size are produced slab by slab and never held whole. Coordinates inside
this module are (z, y, x) in nanometres; voxel index i sits at i * voxel_size.

Geometry (scaled down from cortex so small test volumes hold whole cells): somata are
balls (r 150–185 nm); dendrites are tapering random walks; the axon leaves the soma as
an axon initial segment (AIS, 450 nm, thicker than the axon), then is routed past its
targets, making boutons that touch the target. Chandelier-like cells put "cartridges"
of 2–3 boutons along pyramidal AISs (plus the odd dendrite synapse); pyramidal axons run
along a target dendrite making one bouton or a multi-synaptic run of 3–4 boutons.
Neurites of different cells are then pushed apart until they only touch (`relax`), as
processes in tissue bend around each other; an axon running along its target takes the
side where it meets fewest other cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.ndimage as ndi

PYRAMIDAL = "pyramidal"
CHANDELIER = "chandelier"
# compartment codes used in volumes and skeleton tables
COMP_NONE, COMP_SOMA, COMP_AXON, COMP_DENDRITE, COMP_AIS = 0, 1, 2, 3, 4
COMP_NAMES = {0: "unknown", 1: "soma", 2: "axon", 3: "dendrite", 4: "ais"}

AIS_LENGTH_NM = 450.0
_STEP_NM = 25.0
_CLEFT_RADIUS_NM = 60.0
# boutons along one target sit at least this far apart, so their clefts stay separate
_MIN_BOUTON_SPACING_NM = 160.0
_VESICLE_R_NM = 18.0
# stamps of different cells end at least this share of their radii apart (see `relax`)
_PACK = 0.8
_RELAX_ROUNDS = 150


@dataclass(frozen=True)
class SynthConfig:
    """What to synthesise: shape (z, y, x) in voxels, voxel size (z, y, x) in nm, preset."""

    shape_zyx: tuple[int, int, int]
    voxel_size_zyx: tuple[float, float, float] = (40.0, 16.0, 16.0)
    preset: str = "clean"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.preset not in ("clean", "noisy"):
            raise ValueError(f"preset must be 'clean' or 'noisy', got {self.preset!r}")
        if len(self.shape_zyx) != 3 or min(self.shape_zyx) < 16:
            raise ValueError(f"size must be three numbers, each >= 16, got {self.shape_zyx}")


@dataclass
class Plan:
    """Everything random about a volume, decided up front from the seed."""

    config: SynthConfig
    stamps: np.ndarray  # (N, 4) float64: z, y, x, radius (nm)
    stamp_label: np.ndarray  # (N,) int64 neuron id
    stamp_comp: np.ndarray  # (N,) uint8 compartment code
    stamp_parent: np.ndarray  # (N,) int64 index of parent stamp, -1 for a root
    neuron_class: dict[int, str]
    soma: dict[int, tuple[np.ndarray, float]]  # id -> (centre zyx nm, radius nm)
    synapses: np.ndarray  # (S, 3+3+3) contact zyx, bouton centre zyx, normal zyx
    synapse_pre: np.ndarray  # (S,) int64
    synapse_post: np.ndarray  # (S,) int64
    vesicles: np.ndarray  # (V, 3) centre zyx nm
    vesicle_label: np.ndarray  # (V,) int64 (presynaptic neuron)
    gain: np.ndarray  # (Z,) per-section intensity gain
    offset: np.ndarray  # (Z,) per-section intensity offset
    missing: set[int] = field(default_factory=set)
    shifts: dict[int, tuple[int, int]] = field(default_factory=dict)


class _Builder:
    _CELL_NM = 250.0  # grid cell of the stamp index, above any `_PACK` reach

    def __init__(self) -> None:
        self.pts: list[tuple[float, float, float, float]] = []
        self.label: list[int] = []
        self.comp: list[int] = []
        self.parent: list[int] = []
        self.grid: dict[tuple[int, int, int], list[int]] = {}

    def _key(self, p: Sequence[float] | np.ndarray) -> tuple[int, int, int]:
        c = self._CELL_NM
        return (int(p[0] // c), int(p[1] // c), int(p[2] // c))

    def add(self, p: np.ndarray, r: float, label: int, comp: int, parent: int) -> int:
        self.pts.append((float(p[0]), float(p[1]), float(p[2]), float(r)))
        self.label.append(label)
        self.comp.append(comp)
        self.parent.append(parent)
        self.grid.setdefault(self._key(p), []).append(len(self.pts) - 1)
        return len(self.pts) - 1

    def move_all(self, pos: np.ndarray) -> None:
        """Give every stamp a new centre (rows of `pos`) and re-index them."""
        self.pts = [(float(z), float(y), float(x), r)
                    for (z, y, x), (*_, r) in zip(pos.tolist(), self.pts, strict=True)]
        self.grid = {}
        for i, p in enumerate(self.pts):
            self.grid.setdefault(self._key(p), []).append(i)

    def near(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Indices of the stamps whose grid cells meet the box [lo, hi] (nm)."""
        a, b = self._key(lo), self._key(hi)
        out: list[int] = []
        for kz in range(a[0], b[0] + 1):
            for ky in range(a[1], b[1] + 1):
                for kx in range(a[2], b[2] + 1):
                    out.extend(self.grid.get((kz, ky, kx), ()))
        return np.array(out, np.int64)


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else np.array([1.0, 0.0, 0.0])


def _random_dir(rng: np.random.Generator, z_bias: float = 1.6) -> np.ndarray:
    v = rng.normal(size=3)
    v[0] *= z_bias  # neurites tend to cross sections, as in most EM stacks
    return _unit(v)


def _perp(d: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    v -= v.dot(d) * d
    return _unit(v)


class _Planner:
    def __init__(self, cfg: SynthConfig) -> None:
        self.cfg = cfg
        self.rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 7]))
        self.vs = np.array(cfg.voxel_size_zyx, float)
        self.extent = np.array(cfg.shape_zyx, float) * self.vs
        self.margin = 400.0
        self.b = _Builder()
        self.neuron_class: dict[int, str] = {}
        self.soma: dict[int, tuple[np.ndarray, float]] = {}
        self.ais: dict[int, list[int]] = {}  # neuron -> stamp indices of its AIS
        self.ais_end: dict[int, int] = {}
        self.dendrites: dict[int, list[list[int]]] = {}
        self.syn: list[np.ndarray] = []
        self.syn_pre: list[int] = []
        self.syn_post: list[int] = []
        self.ves: list[np.ndarray] = []
        self.ves_label: list[int] = []
        self.pinned: set[int] = set()  # stamps of planted contacts (see `relax`)

    def inside(self, p: np.ndarray, margin: float) -> bool:
        return bool(np.all(p >= -margin) and np.all(p <= self.extent + margin))

    def walk(self, start: np.ndarray, parent: int, d: np.ndarray, length: float, r0: float,
             r1: float, label: int, comp: int, branch: bool) -> list[int]:
        rng = self.rng
        n = max(2, int(length / _STEP_NM))
        out: list[int] = []
        pos = start.copy()
        for i in range(n):
            d = _unit(d + rng.normal(0, 0.12, 3))
            pos = pos + d * _STEP_NM
            if not self.inside(pos, self.margin):
                break
            r = r0 + (r1 - r0) * i / n
            parent = self.b.add(pos, r, label, comp, parent)
            out.append(parent)
        if branch and len(out) > 12:
            k = int(rng.integers(len(out) // 3, 2 * len(out) // 3))
            p0 = np.array(self.b.pts[out[k]][:3])
            nd = _unit(d + 1.2 * _perp(d, rng))
            self.walk(p0, out[k], nd, length * 0.5, r0 * 0.9, r1, label, comp, False)
        return out

    def straight(self, a: np.ndarray, bpt: np.ndarray, parent: int, r: float, label: int,
                 comp: int) -> int:
        dist = float(np.linalg.norm(bpt - a))
        n = int(dist / _STEP_NM)
        for i in range(1, n + 1):
            p = a + (bpt - a) * i / (n + 1)
            parent = self.b.add(p, r, label, comp, parent)
        return parent

    def make_cell(self, nid: int, cls: str, c: np.ndarray) -> None:
        rng = self.rng
        rs = float(rng.uniform(165, 185) if cls == PYRAMIDAL else rng.uniform(150, 165))
        self.neuron_class[nid] = cls
        self.soma[nid] = (c, rs)
        root = self.b.add(c, rs, nid, COMP_SOMA, -1)
        d_ax = _random_dir(rng)
        if cls == PYRAMIDAL:
            d_ax = _unit(d_ax + np.array([0.0, 1.2, 0.0]))
        dirs: list[np.ndarray] = []
        for _ in range(int(rng.integers(3, 5))):
            for _try in range(20):
                d = _random_dir(rng)
                if d.dot(d_ax) < 0.3 and all(d.dot(o) < 0.6 for o in dirs):
                    break
            dirs.append(d)
            start = c + d * rs * 0.85
            r0, r1 = (100.0, 78.0) if cls == PYRAMIDAL else (90.0, 72.0)
            length = float(rng.uniform(1300, 2400))
            path = self.walk(start, root, d, length, r0, r1, nid, COMP_DENDRITE, True)
            self.dendrites.setdefault(nid, []).append(path)
        # axon initial segment: straight, from the soma surface
        start = c + d_ax * rs * 0.85
        ais: list[int] = []
        parent = root
        n = int(AIS_LENGTH_NM / _STEP_NM)
        for i in range(1, n + 1):
            p = start + d_ax * _STEP_NM * i
            parent = self.b.add(p, 80.0, nid, COMP_AIS, parent)
            ais.append(parent)
        self.ais[nid] = ais
        self.ais_end[nid] = parent

    def run_along(self, pre: int, target: list[int], parent: int, n_boutons: int,
                  r_ax: float) -> int:
        """Route the axon alongside `target` stamps, with boutons touching it."""
        rng = self.rng
        pts = np.array([self.b.pts[i][:3] for i in target])
        rad = np.array([self.b.pts[i][3] for i in target])
        post = self.b.label[target[0]]
        self.pinned.update(target)
        d = _unit(pts[-1] - pts[0])
        room = int((len(target) - 3) * _STEP_NM // _MIN_BOUTON_SPACING_NM) + 1
        k_b = np.linspace(1, len(target) - 2, max(1, min(n_boutons, room))).round().astype(int)
        k_b = np.unique(k_b)
        r_b = 100.0
        # the side of the target to run along: of a few, the one that overlaps other
        # cells least (two axons on one AIS sit side by side, not inside each other)
        r_run = np.where(np.isin(np.arange(len(target)), k_b), r_b, r_ax)
        near = self.b.near(pts.min(axis=0) - 500.0, pts.max(axis=0) + 500.0)
        lab = np.array([self.b.label[i] for i in near], np.int64)
        near = near[(lab != pre) & (lab != post)]
        other = np.array([self.b.pts[i] for i in near], float).reshape(-1, 4)
        best, nrm = np.inf, d
        for _ in range(6):
            cand = _perp(d, rng)
            run = pts + cand * (rad + np.where(r_run == r_b, r_b * 0.7, r_ax * 0.75))[:, None]
            gap = np.linalg.norm(run[:, None] - other[None, :, :3], axis=2)
            over = float(np.maximum(_PACK * (r_run[:, None] + other[None, :, 3]) - gap,
                                    0).sum())
            if over < best:
                best, nrm = over, cand
        offs = pts + nrm * (rad[:, None] + r_ax * 0.75)
        cur = np.array(self.b.pts[parent][:3])
        parent = self.straight(cur, offs[0], parent, r_ax, pre, COMP_AXON)
        first_new = len(self.b.pts)
        for k in range(len(target)):
            if k in k_b:
                centre = pts[k] + nrm * (rad[k] + r_b * 0.7)
                parent = self.b.add(centre, r_b, pre, COMP_AXON, parent)
                contact = pts[k] + nrm * rad[k]
                self.syn.append(np.concatenate([contact, centre, nrm]))
                self.syn_pre.append(pre)
                self.syn_post.append(post)
                for _ in range(14):
                    v = rng.normal(size=3)
                    v = _unit(v) * r_b * 0.55 * rng.uniform(0.2, 1.0) ** (1 / 3)
                    self.ves.append(centre + v - nrm * r_b * 0.2)
                    self.ves_label.append(pre)
            else:
                parent = self.b.add(offs[k], r_ax, pre, COMP_AXON, parent)
        self.pinned.update(range(first_new, len(self.b.pts)))
        return parent

    def dendrite_piece(self, nid: int, near: np.ndarray, n: int) -> list[int] | None:
        best: tuple[float, list[int]] | None = None
        for path in self.dendrites.get(nid, []):
            if len(path) < n + 4:
                continue
            pts = np.array([self.b.pts[i][:3] for i in path])
            inside = np.all((pts >= 0) & (pts <= self.extent), axis=1)
            dist = np.linalg.norm(pts - near, axis=1) + np.where(inside, 0, 1e6)
            k = int(np.argmin(dist[2:-n - 1])) + 2
            if best is None or dist[k] < best[0]:
                best = (float(dist[k]), path[k:k + n])
        return None if best is None or best[0] > 1e5 else best[1]

    def make_axons(self) -> None:
        rng = self.rng
        ids = sorted(self.neuron_class)
        somas = {i: self.soma[i][0] for i in ids}
        for nid in ids:
            parent = self.ais_end[nid]
            here = np.array(self.b.pts[parent][:3])
            r_ax = 65.0
            others = sorted((float(np.linalg.norm(somas[o] - here)), o) for o in ids if o != nid)
            if self.neuron_class[nid] == CHANDELIER:
                targets = [o for dd, o in others
                           if self.neuron_class[o] == PYRAMIDAL and dd < 2600][:4]
                for o in targets:
                    ais = self.ais[o]
                    piece = ais[2:]
                    parent = self.run_along(nid, piece, parent, int(rng.integers(2, 5)), r_ax)
                if rng.random() < 0.5 and others:
                    o = others[0][1]
                    piece2 = self.dendrite_piece(o, np.array(self.b.pts[parent][:3]), 8)
                    if piece2 is not None:
                        parent = self.run_along(nid, piece2, parent, 1, r_ax)
            else:
                cands = [o for dd, o in others if dd < 2200][:3]
                for o in cands[: int(rng.integers(1, 3))]:
                    multi = rng.random() < 0.5
                    n = 26 if multi else 8
                    dpiece = self.dendrite_piece(o, np.array(self.b.pts[parent][:3]), n)
                    if dpiece is None:
                        continue
                    nb = int(rng.integers(3, 5)) if multi else 1
                    parent = self.run_along(nid, dpiece, parent, nb, r_ax)
            cur = np.array(self.b.pts[parent][:3])
            self.walk(cur, parent, _random_dir(rng), 1200.0, r_ax, r_ax, nid, COMP_AXON, False)

    def place_somata(self) -> None:
        rng = self.rng
        cfg = self.cfg
        lo = np.full(3, -self.margin)
        hi = self.extent + self.margin
        vol_um3 = float(np.prod((hi - lo) / 1000.0))
        n_target = max(3, round(vol_um3 * 0.55))
        centres: list[np.ndarray] = []
        classes: list[str] = []
        tries = 0
        while len(centres) < n_target and tries < n_target * 200:
            tries += 1
            if len(centres) < 3:  # guarantee whole cells of both classes inside
                p = self.extent * rng.uniform(0.25, 0.75, 3)
                p[0] = self.extent[0] * (0.2 + 0.3 * len(centres))
                cls = CHANDELIER if len(centres) == 0 else PYRAMIDAL
            else:
                p = lo + (hi - lo) * rng.random(3)
                cls = CHANDELIER if rng.random() < 0.2 else PYRAMIDAL
            if all(np.linalg.norm(p - q) > 650 for q in centres):
                centres.append(p)
                classes.append(cls)
        del cfg
        for i, (p, cls) in enumerate(zip(centres, classes, strict=True)):
            self.make_cell(i + 1, cls, p)


    def relax(self) -> None:
        """Push apart the stamps of different cells until none overlaps another by more
        than `_PACK` allows; stamps in `pinned` (planted contacts) stay put."""
        b = self.b
        pts = np.array(b.pts, float)
        movable = np.ones(len(pts), bool)
        movable[list(self.pinned)] = False
        b.move_all(relax(pts[:, :3], pts[:, 3], np.array(b.label), np.array(b.parent),
                         movable, np.array(b.comp) == COMP_SOMA))


def relax(pos: np.ndarray, radius: np.ndarray, label: np.ndarray, parent: np.ndarray,
          movable: np.ndarray, rigid: np.ndarray, rounds: int = _RELAX_ROUNDS) -> np.ndarray:
    """Stamp centres moved so that stamps of different cells sit at least
    `_PACK * (r_i + r_j)` apart, as neurites in tissue bend around each other instead of
    passing through. Without this, labels go to the nearest stamp (relative to its radius)
    and a thin process crossing a thicker one keeps only a sliver a voxel or two wide that
    no EM image would show, where a tissue process keeps its calibre.

    Each round moves every overlapping pair apart along the line of centres, the heavier
    stamp (radius cubed) less, averaged over a stamp's overlaps and across the stamp's
    neurite (never along it); the moves are then
    smoothed along each neurite (parent/child stamps) so that a push bends the neurite
    rather than kinking it. `rigid` stamps (somata) are not smoothed with their neurites.
    Stamps not `movable` stay where they are. Deterministic; no randomness.
    """
    from scipy.spatial import cKDTree

    pos = pos.copy()
    w = radius**3
    top = np.sort(radius)[-2:] if len(radius) > 1 else radius
    reach = _PACK * float(top.sum())
    child = np.nonzero(parent >= 0)[0]
    par = parent[child]
    deg = np.bincount(child, minlength=len(pos)) + np.bincount(par, minlength=len(pos))
    smooth = movable & ~rigid & (deg > 0)
    has_parent = (parent >= 0) & ~rigid
    slack = 60.0  # candidate pairs are found this far beyond reach, and kept while
    drift = np.inf  # no stamp has moved half of it since
    for _ in range(rounds):
        if drift > slack / 2:
            pairs = cKDTree(pos).query_pairs(reach + slack, output_type="ndarray")
            ci, cj = pairs[:, 0], pairs[:, 1]
            gap = np.linalg.norm(pos[cj] - pos[ci], axis=1) - _PACK * (radius[ci] + radius[cj])
            sel = (label[ci] != label[cj]) & (movable[ci] | movable[cj]) & (gap < slack)
            ci, cj = ci[sel], cj[sel]
            drift = 0.0
        d = pos[cj] - pos[ci]
        dist = np.linalg.norm(d, axis=1)
        over = _PACK * (radius[ci] + radius[cj]) - dist
        sel = over > 1.0
        if not sel.any():
            break
        i, j, d, dist, over = ci[sel], cj[sel], d[sel], dist[sel], over[sel]
        u = d / np.maximum(dist, 1e-6)[:, None]
        wi, wj = w[i], w[j]
        share_i = np.where(movable[i], np.where(movable[j], wj / (wi + wj), 1.0), 0.0)
        share_j = np.where(movable[j], np.where(movable[i], wi / (wi + wj), 1.0), 0.0)
        ij = np.concatenate([i, j])
        push = np.concatenate([-u * (over * share_i)[:, None], u * (over * share_j)[:, None]])
        n = np.bincount(ij, np.concatenate([share_i, share_j]) > 0, len(pos))
        move = _sum_at(ij, push, len(pos)) / np.maximum(n, 1)[:, None]
        # a push along a neurite's own axis separates nothing and would tear it apart
        tan = np.zeros_like(pos)
        tan[has_parent] = pos[has_parent] - pos[parent[has_parent]]
        tan /= np.maximum(np.linalg.norm(tan, axis=1), 1e-6)[:, None]
        move -= (move * tan).sum(axis=1)[:, None] * tan
        ends = np.concatenate([child, par])
        for _s in range(3):
            nb = _sum_at(ends, np.concatenate([move[par], move[child]]), len(pos)) / \
                np.maximum(deg, 1)[:, None]
            move = np.where(smooth[:, None], 0.5 * move + 0.5 * nb, move)
        pos[movable] += move[movable]
        drift += float(np.abs(move[movable]).max(initial=0.0)) * np.sqrt(3)
    return pos


def _sum_at(index: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """(n, 3) sums of the rows of `values` (k, 3) by `index` (k,)."""
    return np.stack([np.bincount(index, values[:, c], n) for c in range(3)], axis=1)


def make_plan(cfg: SynthConfig) -> Plan:
    """Decide cells, synapses and artefacts for `cfg` (deterministic in the seed)."""
    pl = _Planner(cfg)
    pl.place_somata()
    pl.relax()
    pl.make_axons()
    pl.relax()
    b = pl.b
    nz = cfg.shape_zyx[0]
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 11]))
    noisy = cfg.preset == "noisy"
    amp_g, amp_o = (0.15, 0.08) if noisy else (0.04, 0.03)
    # smooth drift between sections: random walk, low-passed
    g = ndi.gaussian_filter1d(rng.normal(0, 1, nz), 3) * amp_g * 3
    o = ndi.gaussian_filter1d(rng.normal(0, 1, nz), 3) * amp_o * 3
    missing: set[int] = set()
    shifts: dict[int, tuple[int, int]] = {}
    if noisy:
        n_miss = max(1, round(nz * 0.02))
        n_shift = max(1, round(nz * 0.03))
        cand = rng.permutation(np.arange(2, nz - 2))
        missing = {int(z) for z in cand[:n_miss]}
        for z in cand[n_miss:n_miss + n_shift]:
            s = rng.integers(3, 8, 2) * rng.choice([-1, 1], 2)
            shifts[int(z)] = (int(s[0]), int(s[1]))
    syn = np.array(pl.syn, float).reshape(-1, 9)
    ves = np.array(pl.ves, float).reshape(-1, 3)
    return Plan(
        config=cfg,
        stamps=np.array(b.pts, float),
        stamp_label=np.array(b.label, np.int64),
        stamp_comp=np.array(b.comp, np.uint8),
        stamp_parent=np.array(b.parent, np.int64),
        neuron_class=pl.neuron_class,
        soma=pl.soma,
        synapses=syn,
        synapse_pre=np.array(pl.syn_pre, np.int64),
        synapse_post=np.array(pl.syn_post, np.int64),
        vesicles=ves,
        vesicle_label=np.array(pl.ves_label, np.int64),
        gain=1.0 + g,
        offset=o,
        missing=missing,
        shifts=shifts,
    )


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


def render_slab(plan: Plan, z0: int, z1: int) -> Slab:
    """Render sections [z0, z1): image, labels, compartments, clefts (no I/O)."""
    cfg = plan.config
    vs = np.array(cfg.voxel_size_zyx, float)
    nz, ny, nx = cfg.shape_zyx
    h0, h1 = max(z0 - 2, 0), min(z1 + 2, nz)  # halo for membranes and clefts
    shp = (h1 - h0, ny, nx)
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
    fg = lab != 0
    # membranes: in-plane label change (dark); z-faces: lighter (partial volume)
    mem = np.zeros(shp, bool)
    mem[:, 1:, :] |= lab[:, 1:, :] != lab[:, :-1, :]
    mem[:, :-1, :] |= lab[:, 1:, :] != lab[:, :-1, :]
    mem[:, :, 1:] |= lab[:, :, 1:] != lab[:, :, :-1]
    mem[:, :, :-1] |= lab[:, :, 1:] != lab[:, :, :-1]
    zf = np.zeros(shp, bool)
    zf[1:] |= lab[1:] != lab[:-1]
    zf[:-1] |= lab[1:] != lab[:-1]
    mem &= fg
    zf &= fg & ~mem
    # clefts
    clefts = np.zeros(shp, np.uint64)
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
    ves_mask = vesicle_mask(plan, lab, h0, h1) & (clefts == 0)
    noisy = cfg.preset == "noisy"
    w_amp, c_amp, t_amp = (0.08, 0.06, 0.05) if noisy else (0.035, 0.03, 0.04)
    img = np.empty(shp, np.float32)
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
        sec = sec * plan.gain[z] + plan.offset[z]
        if z in plan.missing:
            sec[:] = 0.02
        if z in plan.shifts:
            sec = ndi.shift(sec, plan.shifts[z], order=0, mode="nearest")
        out[z - z0] = np.clip(sec * 255.0, 0, 255).astype(np.uint8)
    crop = slice(z0 - h0, z1 - h0)
    return Slab(z0=z0, image=out, labels=lab[crop].copy(), compartments=comp[crop].copy(),
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


def truth_skeleton_nodes(plan: Plan, labels_at: np.ndarray) -> dict[str, np.ndarray]:
    """Skeleton nodes kept for metrics: inside the volume and inside their own label.

    `labels_at` holds the ground-truth label at each stamp's voxel (0 outside). Nodes
    occluded by another cell are dropped, so the truth used as a prediction has no merger.
    """
    keep = labels_at == plan.stamp_label
    parent = plan.stamp_parent.copy()
    ok_parent = (parent >= 0) & keep[np.maximum(parent, 0)]
    parent[~ok_parent] = -1
    idx = np.nonzero(keep)[0]
    return {
        "segment_id": plan.stamp_label[idx],
        "node_id": idx.astype(np.int64),
        "parent_id": parent[idx],
        "z": plan.stamps[idx, 0],
        "y": plan.stamps[idx, 1],
        "x": plan.stamps[idx, 2],
        "radius": plan.stamps[idx, 3],
        "compartment": plan.stamp_comp[idx],
    }
