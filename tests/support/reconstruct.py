"""Plain references and small volumes for the reconstruction tests.

The references (components, growth, the composed segmentation) are written the slow, obvious way,
voxel by voxel, so that the compiled kernels can be checked against them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from connectome_query.reconstruct import boundary, metrics, segment, synth
from connectome_query.reconstruct.lattice import neighbour_slices
from connectome_query.reconstruct.segment import gaps

VS = (40.0, 16.0, 16.0)
STEPS = [(0, -1), (0, 1), (1, -1), (1, 1), (2, -1), (2, 1)]
"""(axis, direction) of the six face neighbours, in the segmentation's order."""


def truth_volume(seed: int) -> tuple[synth.Slab, dict[str, Any]]:
    """A clean synthetic 64^3 volume and its truth (segmentation, skeleton nodes)."""
    plan = synth.make_plan(synth.SynthConfig((64, 64, 64), VS, "clean", seed))
    s = synth.render(plan)
    vs = np.array(VS)
    vox = np.clip(np.round(plan.stamps[:, :3] / vs).astype(int), 0, 63)
    inside = np.all((plan.stamps[:, :3] / vs >= -0.5) & (plan.stamps[:, :3] / vs < 63.5), axis=1)
    lab_at = np.where(inside, s.labels[vox[:, 0], vox[:, 1], vox[:, 2]].astype(np.int64), 0)
    sk = pd.DataFrame(synth.truth_skeleton_nodes(plan, lab_at))
    return s, {"segmentation": s.labels, "skeletons": sk}


def class_affinities(s: synth.Slab) -> np.ndarray:
    """Affinities from the volume's true voxel classes (probability 1 for the true class)."""
    cls = boundary.voxel_classes(s.labels, s.clefts != 0)
    probs = np.stack([(cls == k).astype(np.float32) for k in range(boundary.N_CLASSES)])
    return boundary.affinities_from_probabilities(probs)


def edge(affs: np.ndarray, v: tuple[int, int, int], c: int, d: int) -> tuple[
        tuple[int, int, int], float] | None:
    """Neighbour of v along axis c, direction d, with the affinity of their edge."""
    u = list(v)
    u[c] += d
    if not 0 <= u[c] < affs.shape[1 + c]:
        return None
    hi = v if d < 0 else tuple(u)
    return (u[0], u[1], u[2]), float(affs[(c, *hi)])


def random_affs(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    return rng.random((3, *shape)).astype(np.float32)


def reference_grow(lab: np.ndarray, affs: np.ndarray, t: float, layers: int) -> np.ndarray:
    """Synchronous growth, one voxel at a time: each layer every unlabelled voxel takes
    the label of its strongest edge above t to a voxel labelled before the layer."""
    ref = lab.copy()
    for _ in range(layers):
        new = {}
        for v in zip(*np.nonzero(ref == 0), strict=True):
            best, best_a = 0, np.float32(t)
            for c, d in STEPS:
                e = edge(affs, v, c, d)
                if e is not None and ref[e[0]] != 0 and np.float32(e[1]) > best_a:
                    best, best_a = int(ref[e[0]]), np.float32(e[1])
            if best:
                new[v] = best
        if not new:
            break
        for v, b in new.items():
            ref[v] = b
    return ref


def reference_components(mask: np.ndarray, affs: np.ndarray, t: float,
                         min_size: int = 1) -> np.ndarray:
    """Breadth-first labelling in raster order of first voxel."""
    out = np.zeros(mask.shape, np.int64)
    n = 0
    for v in np.ndindex(mask.shape):
        if not mask[v] or out[v]:
            continue
        n += 1
        out[v] = n
        queue = [v]
        while queue:
            w = queue.pop()
            for c, d in STEPS:
                e = edge(affs, w, c, d)
                if e is not None and mask[e[0]] and not out[e[0]] and e[1] > t:
                    out[e[0]] = n
                    queue.append(e[0])
    return keep_large(out, min_size)


def keep_large(lab: np.ndarray, min_size: int) -> np.ndarray:
    """Zero labels under min_size voxels, number the others 1.. by first appearance."""
    ids, first, sizes = np.unique(lab.reshape(-1), return_index=True, return_counts=True)
    keep = (ids != 0) & (sizes >= min_size)
    new = np.zeros(int(ids.max()) + 1 if len(ids) else 1, np.int64)
    new[ids[keep][np.argsort(first[keep])]] = np.arange(1, int(keep.sum()) + 1)
    return new[lab]


def _reference_faces(lab: np.ndarray, affs: np.ndarray) -> dict[tuple[int, int], list[float]]:
    """Region graph, voxel by voxel: (a, b) -> [summed affinity, face count]."""
    faces: dict[tuple[int, int], list[float]] = {}
    for v in np.ndindex(lab.shape):
        for c in range(3):
            e = edge(affs, v, c, -1)
            a, b = int(lab[v]), int(lab[e[0]]) if e is not None else 0
            if e is not None and a and b and a != b:
                f = faces.setdefault((min(a, b), max(a, b)), [0.0, 0])
                f[0] += e[1]
                f[1] += 1
    return faces


def reference_segmentation(affs: np.ndarray, p: segment.SegParams) -> np.ndarray:
    """`seeded_segmentation` composed of plain references: scipy's EDT, breadth-first
    components, voxel-by-voxel growth, a Python region graph, the greedy agglomeration
    (tested against a naive one) and numpy renumbering."""
    from scipy import ndimage

    inner = np.ones(affs.shape[1:], np.float32)
    for c in (1, 2):  # the smallest in-plane affinity of each voxel (edges only)
        lo, hi = neighbour_slices(c)
        inner[hi] = np.minimum(inner[hi], affs[c][hi])
        inner[lo] = np.minimum(inner[lo], affs[c][hi])
    core = inner > np.float32(p.seed_threshold)
    seeds = core & (ndimage.distance_transform_edt(core, sampling=VS) > p.seed_distance_nm)
    lab = reference_components(seeds, affs, p.seed_threshold, max(p.min_seed, 1))
    lab = reference_grow(lab, affs, p.grow_threshold, p.grow_layers)
    free = lab == 0
    linked = np.zeros_like(free)
    for v in zip(*np.nonzero(free), strict=True):
        linked[v] = any(e is not None and free[e[0]] and e[1] > np.float32(p.grow_threshold)
                        for e in (edge(affs, v, c, d) for c, d in STEPS))
    rescued = reference_components(linked, affs, p.grow_threshold, max(p.min_seed, 2))
    lab = np.where(rescued != 0, rescued + lab.max(), lab)
    lab = reference_grow(lab, affs, p.grow_threshold, 64)
    faces = _reference_faces(lab, affs)
    keys = sorted(faces)
    merged = segment.agglomerate(np.array(keys, np.uint64).reshape(-1, 2),
                                 np.array([faces[k][0] for k in keys]),
                                 np.array([faces[k][1] for k in keys]), p.merge_threshold,
                                 p.prior_faces)
    lab = np.vectorize(lambda x: merged.get(int(x), int(x)))(lab)
    return keep_large(lab, p.min_size)


def noisy_cells(shape: tuple[int, int, int], seed: int) -> np.ndarray:
    """Affinities of Voronoi cells with noise and leaks (strong edges across boundaries)."""
    rng = np.random.default_rng(seed)
    centres = rng.random((7, 3)) * np.array(shape)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    cells = np.argmin(((grid[..., None, :] - centres) ** 2).sum(-1), -1) + 1
    cells[rng.random(shape) < 0.05] = 0  # a little extracellular space
    affs = boundary.true_affinities(cells)
    holes = (affs < 0.5) & (rng.random(affs.shape) < 0.04)
    affs = np.clip(affs + rng.normal(0, 0.15, affs.shape), 0, 1).astype(np.float32)
    affs[holes] = 0.95
    return affs


class MemoryStore:
    """A label store in memory (the pipeline uses a zarr array)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.labels = np.zeros(shape, np.uint64)
        self.writes = 0

    def write(self, z0: int, labels: np.ndarray) -> None:
        self.labels[z0:z0 + labels.shape[0]] = labels
        self.writes += 1

    def read(self, z0: int, z1: int) -> np.ndarray:
        return self.labels[z0:z1].copy()


def segment_in_blocks(affs: np.ndarray, block: tuple[int, int, int],
                      p: segment.SegParams | None = None) -> np.ndarray:
    """`seeded_segmentation` done block by block in memory with `segment.blocks` and
    `segment.stitch` (the engine does the same through zarr and Dask)."""
    from connectome_query.reconstruct.segment import blocks, stitch

    p = p or segment.SegParams()
    shape = affs.shape[1:]
    counts = [-(-s // b) for s, b in zip(shape, block, strict=True)]
    grid = list(np.ndindex(*counts))
    halos = blocks.halos(p, VS)

    def boxes(n: int, halo: tuple[int, int, int]) -> tuple[tuple[slice, ...], tuple[
            tuple[int, int, int], tuple[int, int, int]], tuple[slice, ...]]:
        lo = [i * b for i, b in zip(grid[n], block, strict=True)]
        hi = [min(a + b, s) for a, b, s in zip(lo, block, shape, strict=True)]
        rlo = [max(a - h, 0) for a, h in zip(lo, halo, strict=True)]
        rhi = [min(a + h, s) for a, h, s in zip(hi, halo, shape, strict=True)]
        region = tuple(slice(a, b) for a, b in zip(rlo, rhi, strict=True))
        core = (tuple(a - r for a, r in zip(lo, rlo, strict=True)),
                tuple(b - r for b, r in zip(hi, rlo, strict=True)))
        return region, core, tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))

    def stats(n: int, local: np.ndarray, at: tuple[slice, ...]) -> tuple[np.ndarray, ...]:
        ids, first, size = np.unique(local.reshape(-1), return_index=True,
                                     return_counts=True)
        first, size = first[ids != 0], size[ids != 0]
        zyx = np.array(np.unravel_index(first, local.shape)).T + [s.start for s in at]
        return size, np.ravel_multi_index(tuple(zyx.T), shape) if len(zyx) else first

    def faces(vol: np.ndarray, thr: float) -> np.ndarray:
        out = [np.zeros((0, 2), np.uint64)]
        for c in range(3):
            for z in range(block[c], shape[c], block[c]):
                below = [slice(None)] * 3
                above = [slice(None)] * 3
                below[c], above[c] = slice(z - 1, z), slice(z, z + 1)
                out.append(blocks.face_pairs(vol[tuple(below)], vol[tuple(above)],
                                             affs[c][tuple(above)], thr))
        return np.concatenate(out)

    def numbered(local_of: dict[int, np.ndarray], at: dict[int, tuple[slice, ...]],
                 thr: float, min_size: int, offset: int) -> np.ndarray:
        prov = np.zeros(shape, np.uint64)
        sizes, firsts = [], []
        for n in range(len(grid)):
            prov[at[n]] = stitch.provisional(n, local_of[n])
            s, f = stats(n, local_of[n], at[n])
            sizes.append(s)
            firsts.append(f)
        num = stitch.number(sizes, firsts, faces(prov, thr), min_size, offset)
        return num.lookup(prov), num.count  # type: ignore[return-value]

    at, local = {}, {}
    for n in range(len(grid)):
        region, core, at[n] = boxes(n, halos.seeds)
        local[n] = blocks.seeds(affs[(slice(None), *region)], core, VS, p)
    seed_ids, n_seeds = numbered(local, at, p.seed_threshold, max(p.min_seed, 1), 0)
    grown = np.zeros(shape, np.uint64)
    for n in range(len(grid)):
        region, core, _ = boxes(n, halos.growth)
        grown[at[n]], local[n] = blocks.growth(affs[(slice(None), *region)],
                                               seed_ids[region], core, p)
    rescued, _ = numbered(local, at, p.grow_threshold, max(p.min_seed, 2), n_seeds)
    frag_in = np.where(rescued != 0, rescued, grown)
    frags = np.zeros(shape, np.uint64)
    edges: list[list[np.ndarray]] = [[], [], []]
    for n in range(len(grid)):
        region, core, _ = boxes(n, halos.fragments)
        frags[at[n]], e = blocks.fragments(affs[(slice(None), *region)], frag_in[region],
                                           core, p)
        for k in range(3):
            edges[k].append(e[k])
    n_frag = int(frags.max())
    ids, first, size = np.unique(frags.reshape(-1), return_index=True, return_counts=True)
    sizes = np.zeros(n_frag + 1, np.int64)
    firsts = np.zeros(n_frag + 1, np.int64)
    sizes[ids.astype(np.int64)] = size
    firsts[ids.astype(np.int64)] = first
    lut = stitch.final_ids(sizes, firsts, *stitch.join_edges(*edges), p.merge_threshold,
                           p.prior_faces, p.min_size)
    return lut[frags.astype(np.int64)]


def write_em(path: Any, image: np.ndarray, affs: np.ndarray | None = None) -> tuple[Any, Any]:
    """A minimal EM directory (volume.json, image.zarr; no truth) at 16 x 16 x 40 nm, and
    `affs` written beside it as zarr (3, z, y, x); returns (EM directory, affinities path)."""
    from pathlib import Path

    from connectome_query.reconstruct import io

    em = Path(path)
    em.mkdir(parents=True, exist_ok=True)
    io.write_json(em / "volume.json", {"voxel_size_nm": [16.0, 16.0, 40.0],
                                       "shape_zyx": list(image.shape), "seed": 0})
    io.write_zarr(em / "image.zarr", np.ascontiguousarray(image, np.uint8))
    apath = None
    if affs is not None:
        apath = em.parent / f"{em.name}_affinities.zarr"
        io.write_zarr(apath, np.ascontiguousarray(affs, np.float32))
    return em, apath


def read_volume(path: Any) -> np.ndarray:
    """A whole zarr array of a run or EM directory."""
    from pathlib import Path

    from connectome_query.reconstruct import io

    st = io.open_zarr(Path(path))
    return io.read_block(st, (slice(None),) * len(st.shape), Path(path))


def pairs_by_hand(below: np.ndarray, above: np.ndarray, frac: float) -> set[tuple[int, int]]:
    """Mutual best matches by overlap, counted pixel by pixel with a dictionary."""
    over: dict[tuple[int, int], int] = {}
    for a, b in zip(below.ravel().tolist(), above.ravel().tolist(), strict=True):
        if a and b:
            over[(a, b)] = over.get((a, b), 0) + 1
    area_a = {int(i): int((below == i).sum()) for i in np.unique(below) if i}
    area_b = {int(i): int((above == i).sum()) for i in np.unique(above) if i}
    return _mutual_by_hand(over, area_a, area_b, frac)


def _mutual_by_hand(over: dict[tuple[int, int], int], area_a: dict[int, int],
                    area_b: dict[int, int], frac: float) -> set[tuple[int, int]]:
    out = set()
    for (a, b), n in over.items():
        best_a = max(v for (x, _), v in over.items() if x == a)
        best_b = max(v for (_, y), v in over.items() if y == b)
        first_a = min(y for (x, y), v in over.items() if x == a and v == best_a)
        first_b = min(x for (x, y), v in over.items() if y == b and v == best_b)
        if b == first_a and a == first_b and n >= frac * min(area_a[a], area_b[b]):
            out.add((a, b))
    return out


def _pieces_by_hand(section: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Each segment's 8-connected parts on a section: (segment id, pixel coordinates (k, 2)),
    found with scipy.ndimage.label one segment at a time, in the raster order of their first
    pixel (ties between equal overlaps go to the earlier part)."""
    from scipy import ndimage

    out = []
    for i in np.unique(section[section != 0]).tolist():
        parts, n = ndimage.label(section == i, structure=np.ones((3, 3), int))
        out += [(i, np.argwhere(parts == k)) for k in range(1, n + 1)]
    return sorted(out, key=lambda part: tuple(part[1][0].tolist()))


def _piece_step_by_hand(pix: np.ndarray, seg: int, behind: list[tuple[int, np.ndarray]],
                        least: int, growth: float) -> tuple[np.ndarray, np.ndarray] | None:
    """A piece's motion over one section and the part it was measured from: its centroid
    less that of the part of the same segment among `behind`'s parts it overlaps most, if
    that overlap is `least` px or more and their areas differ by at most `growth` times;
    else None."""
    best, best_n = None, 0
    mine = {tuple(p) for p in pix.tolist()}
    for i, other in behind:
        n = sum(tuple(p) in mine for p in other.tolist()) if i == seg else 0
        if n > best_n:
            best, best_n = other, n
    if best is None or best_n < least or not 1 / growth <= len(pix) / len(best) <= growth:
        return None
    return pix.mean(0) - best.mean(0), best


def _piece_move_by_hand(pix: np.ndarray, seg: int, behind: list[tuple[int, np.ndarray]],
                        further: list[tuple[int, np.ndarray]] | None, least: int,
                        growth: float) -> np.ndarray:
    """A piece's motion per section: its step from `behind`'s parts, averaged with its
    continuation's step from `further`'s parts where both count; zero where the first
    does not count."""
    first = _piece_step_by_hand(pix, seg, behind, least, growth)
    if first is None:
        return np.zeros(2)
    step, there = first
    second = None if further is None else _piece_step_by_hand(there, seg, further, least,
                                                                growth)
    return step if second is None else (step + second[0]) / 2


def _moved_by_hand(face: np.ndarray, away: list[np.ndarray | None], steps: float,
                   limit: float, least: int, growth: float
                   ) -> list[tuple[int, set[tuple[int, int]]]]:
    """Each piece of `face` (its segment, its pixels) moved by its motion (from the sections
    `away` from the gap, nearest first) times `steps`, clipped, rounded half away from zero,
    kept inside the section."""
    out = []
    behind = away[0] if away else None
    further = away[1] if len(away) > 1 and behind is not None else None
    behind_parts = [] if behind is None else _pieces_by_hand(behind)
    further_parts = None if further is None else _pieces_by_hand(further)
    for seg, pix in _pieces_by_hand(face):
        move = np.clip(_piece_move_by_hand(pix, seg, behind_parts, further_parts, least,
                                           growth) * steps, -limit, limit)
        d = [int(np.sign(v) * np.floor(abs(v) + 0.5)) for v in move]
        out.append((seg, {(y + d[0], x + d[1]) for y, x in pix.tolist()
                          if 0 <= y + d[0] < face.shape[0] and 0 <= x + d[1] < face.shape[1]}))
    return out


GAP_RULES = (gaps.MAX_DRIFT, gaps.MIN_BEHIND, gaps.MAX_GROWTH, gaps.MAX_AREA_RATIO, gaps.MIN_IOU)
"""The gap join's settings, in `drifted_pairs_by_hand`'s order after the overlap fraction."""


def drifted_pairs_by_hand(below: tuple[np.ndarray | None, ...],
                          above: tuple[np.ndarray | None, ...], span: int, frac: float,
                          limit: float, least: int, growth: float, ratio: float,
                          iou: float) -> set[tuple[int, int]]:
    """`pairs_by_hand` over the faces' pieces after moving each half the span along its
    drift, pixel sets intersected one pair at a time; the matched pieces' segments where the
    two moved pieces' areas are within `ratio` times or their overlap is `iou` of their union
    or more, and one segment is the other's best match by its pieces' overlaps summed.
    `below`: sections up to the face in z order, the face last; `above`: the face first."""
    face_a, face_b = below[-1], above[0]
    assert face_a is not None and face_b is not None
    moved_a = _moved_by_hand(face_a, list(below[-2::-1]), span / 2, limit, least, growth)
    moved_b = _moved_by_hand(face_b, list(above[1:]), span / 2, limit, least, growth)
    over = {(i, j): len(pa & pb) for i, (_, pa) in enumerate(moved_a)
            for j, (_, pb) in enumerate(moved_b) if pa & pb}
    matched = _mutual_by_hand(over, {i: len(p) for i, (_, p) in enumerate(moved_a)},
                              {j: len(p) for j, (_, p) in enumerate(moved_b)}, frac)
    total: dict[tuple[int, int], int] = {}
    for (i, j), n in over.items():
        key = (moved_a[i][0], moved_b[j][0])
        total[key] = total.get(key, 0) + n
    best_a: dict[int, tuple[int, int]] = {}  # segment -> (-total, other): least is best
    best_b: dict[int, tuple[int, int]] = {}
    for (a, b), n in total.items():
        best_a[a] = min(best_a.get(a, (0, b)), (-n, b))
        best_b[b] = min(best_b.get(b, (0, a)), (-n, a))

    def alike(i: int, j: int) -> bool:
        pa, pb = moved_a[i][1], moved_b[j][1]
        return (max(len(pa), len(pb)) <= ratio * min(len(pa), len(pb))
                or len(pa & pb) >= iou * len(pa | pb))

    return {(moved_a[i][0], moved_b[j][0]) for i, j in matched
            if alike(i, j) and (best_a[moved_a[i][0]][1] == moved_b[j][0]
                                or best_b[moved_b[j][0]][1] == moved_a[i][0])}


def joined_by_hand(cut: np.ndarray, pairs: set[tuple[int, int]]) -> np.ndarray:
    """`cut` with the segments of each pair given one label, a pair at a time (a segment may
    be joined already: its current label is looked up through `cut`)."""
    want = cut.copy()
    for a, b in pairs:
        want[want == want[cut == b][0]] = want[cut == a][0]
    return want


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two labellings split the voxels alike (VOI zero both ways) with the same
    unlabelled voxels."""
    split, merge = metrics.voi(a, b)
    return split < 1e-9 and merge < 1e-9 and bool(((a == 0) == (b == 0)).all())
