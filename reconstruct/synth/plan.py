"""The plan of a synthetic volume: cells, their skeletons as chains of ball "stamps", synapses.

Everything random is decided here, once, from the seed. Geometry is scaled down from cortex so
that small test volumes hold whole cells: somata are balls (r 150-185 nm); dendrites are tapering
random walks; the axon leaves the soma as an axon initial segment (AIS, `AIS_LENGTH_NM`, thicker
than the axon), then is routed past its targets, making boutons that touch them. Chandelier cells
put cartridges of 2-3 boutons along pyramidal AISs; pyramidal axons run along a target dendrite
making one bouton or a run of 3-4. Coordinates are (z, y, x) in nanometres.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.ndimage as ndi

from connectome_query.reconstruct.synth.packing import PACK, relax
from connectome_query.schema.vocabulary import CHANDELIER, PYRAMIDAL, Compartment

AIS_LENGTH_NM = 450.0
"""Length of every synthetic cell's axon initial segment (ground truth of the generator)."""
STYLES = ("a", "b")
"""Imaging styles of the same planned tissue (`rendering`)."""
_STEP_NM = 25.0
# boutons along one target sit at least this far apart, so their clefts stay separate
_MIN_BOUTON_SPACING_NM = 160.0


@dataclass(frozen=True)
class SynthConfig:
    """What to synthesise: shape (z, y, x) in voxels, voxel size (z, y, x) in nm, preset
    (how much noise and damage), imaging style ("a": the style every shipped network was
    trained on; "b": the same tissue imaged otherwise, see `rendering`)."""

    shape_zyx: tuple[int, int, int]
    voxel_size_zyx: tuple[float, float, float] = (40.0, 16.0, 16.0)
    preset: str = "clean"
    seed: int = 0
    style: str = "a"

    def __post_init__(self) -> None:
        if self.preset not in ("clean", "noisy"):
            raise ValueError(f"preset must be 'clean' or 'noisy', got {self.preset!r}")
        if self.style not in STYLES:
            raise ValueError(f"style must be one of {', '.join(STYLES)}, got {self.style!r}")
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
    """The stamps planned so far, with a grid index for finding those near a place."""

    _CELL_NM = 250.0  # grid cell of the stamp index, above any `PACK` reach

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
        self.comp.append(int(comp))
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


def _around(grid: dict[tuple[int, ...], list[np.ndarray]], key: tuple[int, ...]
            ) -> list[np.ndarray]:
    """The points in the grid cells at and next to `key`."""
    out: list[np.ndarray] = []
    for d in np.ndindex(3, 3, 3):
        out.extend(grid.get(tuple(k + o - 1 for k, o in zip(key, d, strict=True)), ()))
    return out


class _Somata:
    """Soma centres by id, found by distance (a k-d tree)."""

    def __init__(self, centres: dict[int, np.ndarray]) -> None:
        from scipy.spatial import cKDTree

        self.ids = np.array(sorted(centres), np.int64)
        self.centres = centres
        self.tree = cKDTree(np.array([centres[i] for i in self.ids]).reshape(-1, 3))

    def near(self, here: np.ndarray, nid: int, r: float) -> list[tuple[float, int]]:
        """(distance, id) of the other somata within about `r` of `here`, nearest first."""
        found = self.ids[self.tree.query_ball_point(here, r * 1.001)]
        return sorted((float(np.linalg.norm(self.centres[o] - here)), int(o))
                      for o in found if o != nid)

    def nearest(self, here: np.ndarray, nid: int) -> int:
        """The id of the soma nearest `here` other than `nid`'s."""
        _, at = self.tree.query(here, k=2)
        return int(next(o for o in self.ids[at] if o != nid))


class _Planner:
    """Places cells, grows their neurites and routes axons to their targets, in an order
    fixed by the seed."""

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
        root = self.b.add(c, rs, nid, Compartment.SOMA, -1)
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
            path = self.walk(start, root, d, length, r0, r1, nid, Compartment.DENDRITE, True)
            self.dendrites.setdefault(nid, []).append(path)
        # axon initial segment: straight, from the soma surface
        start = c + d_ax * rs * 0.85
        ais: list[int] = []
        parent = root
        n = int(AIS_LENGTH_NM / _STEP_NM)
        for i in range(1, n + 1):
            p = start + d_ax * _STEP_NM * i
            parent = self.b.add(p, 80.0, nid, Compartment.AIS, parent)
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
            over = float(np.maximum(PACK * (r_run[:, None] + other[None, :, 3]) - gap,
                                    0).sum())
            if over < best:
                best, nrm = over, cand
        offs = pts + nrm * (rad[:, None] + r_ax * 0.75)
        cur = np.array(self.b.pts[parent][:3])
        parent = self.straight(cur, offs[0], parent, r_ax, pre, Compartment.AXON)
        first_new = len(self.b.pts)
        for k in range(len(target)):
            if k in k_b:
                centre = pts[k] + nrm * (rad[k] + r_b * 0.7)
                parent = self.b.add(centre, r_b, pre, Compartment.AXON, parent)
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
                parent = self.b.add(offs[k], r_ax, pre, Compartment.AXON, parent)
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
        somas = _Somata({i: self.soma[i][0] for i in ids})
        for nid in ids:
            parent = self.ais_end[nid]
            here = np.array(self.b.pts[parent][:3])
            r_ax = 65.0
            others = somas.near(here, nid, 2600.0)
            if self.neuron_class[nid] == CHANDELIER:
                targets = [o for dd, o in others
                           if self.neuron_class[o] == PYRAMIDAL and dd < 2600][:4]
                for o in targets:
                    ais = self.ais[o]
                    piece = ais[2:]
                    parent = self.run_along(nid, piece, parent, int(rng.integers(2, 5)), r_ax)
                if rng.random() < 0.5 and len(ids) > 1:
                    o = others[0][1] if others else somas.nearest(here, nid)
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
            self.walk(cur, parent, _random_dir(rng), 1200.0, r_ax, r_ax, nid, Compartment.AXON,
                      False)

    def place_somata(self) -> None:
        rng = self.rng
        cfg = self.cfg
        lo = np.full(3, -self.margin)
        hi = self.extent + self.margin
        vol_um3 = float(np.prod((hi - lo) / 1000.0))
        n_target = max(3, round(vol_um3 * 0.55))
        centres: list[np.ndarray] = []
        classes: list[str] = []
        grid: dict[tuple[int, ...], list[np.ndarray]] = {}  # centres by 650 nm cell
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
            key = tuple((p // 650).astype(int))
            if all(np.linalg.norm(p - q) > 650 for q in _around(grid, key)):
                centres.append(p)
                classes.append(cls)
                grid.setdefault(key, []).append(p)
        del cfg
        for i, (p, cls) in enumerate(zip(centres, classes, strict=True)):
            self.make_cell(i + 1, cls, p)

    def relax(self) -> None:
        """Push apart the stamps of different cells until none overlaps another by more
        than `PACK` allows; stamps in `pinned` (planted contacts) stay put."""
        b = self.b
        pts = np.array(b.pts, float)
        movable = np.ones(len(pts), bool)
        movable[list(self.pinned)] = False
        b.move_all(relax(pts[:, :3], pts[:, 3], np.array(b.label), np.array(b.parent),
                         movable, np.array(b.comp) == Compartment.SOMA))


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

