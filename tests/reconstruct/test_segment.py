"""Segmentation algorithms on affinities from ground truth (pure logic)."""

from __future__ import annotations

import numpy as np
import pytest

from connectome_query.reconstruct import boundary, pipeline, segment, synth
from connectome_query.reconstruct.lattice import neighbour_slices

VS = (40.0, 16.0, 16.0)


def _truth(seed: int) -> tuple[synth.Slab, dict]:
    plan = synth.make_plan(synth.SynthConfig((64, 64, 64), VS, "clean", seed))
    s = synth.render(plan)
    vs = np.array(VS)
    vox = np.clip(np.round(plan.stamps[:, :3] / vs).astype(int), 0, 63)
    inside = np.all((plan.stamps[:, :3] / vs >= -0.5) & (plan.stamps[:, :3] / vs < 63.5), axis=1)
    lab_at = np.where(inside, s.labels[vox[:, 0], vox[:, 1], vox[:, 2]].astype(np.int64), 0)
    import pandas as pd

    sk = pd.DataFrame(synth.truth_skeleton_nodes(plan, lab_at))
    return s, {"segmentation": s.labels, "skeletons": sk}


def test_vcg_bits_follow_waterz_layout() -> None:
    affs = np.zeros((3, 2, 2, 2), np.float32)
    affs[2, :, :, 1] = 1.0  # link x=0 and x=1 only
    lab = segment.threshold_components(affs, 0.5, min_size=1)
    assert len(np.unique(lab)) == 4  # four 2-voxel pairs, no background
    assert (lab[:, :, 0] == lab[:, :, 1]).all()


@pytest.mark.parametrize("seed", [1, 3])
def test_true_affinities_give_high_nerl(seed: int) -> None:
    s, truth = _truth(seed)
    cls = boundary.voxel_classes(s.labels, s.clefts != 0)
    probs = np.stack([(cls == k).astype(np.float32) for k in range(boundary.N_CLASSES)])
    affs = boundary.affinities_from_probabilities(probs)
    seg = segment.seeded_segmentation(affs, VS)
    sc = pipeline.segmentation_scores(seg, truth, VS)
    assert sc["voi_merge"] < 0.15


def test_leaky_boundaries_break_threshold_cc_not_ours() -> None:
    s, truth = _truth(1)
    affs = boundary.true_affinities(s.labels)
    rng = np.random.default_rng(0)
    # punch single-voxel holes into boundaries between different cells and add noise
    noisy = np.clip(affs + rng.normal(0, 0.15, affs.shape).astype(np.float32), 0, 1)
    holes = (affs < 0.5) & (rng.random(affs.shape) < 0.03)
    noisy[holes] = 0.95
    # with noise of sd 0.15 on every affinity, growth must accept edges down to 0.5 (the
    # defaults are set for the network's sharper predictions)
    params = segment.SegParams(seed_threshold=0.7, grow_threshold=0.5)
    ours = pipeline.segmentation_scores(segment.seeded_segmentation(noisy, VS, params),
                                        truth, VS)
    base = pipeline.segmentation_scores(segment.threshold_components(noisy), truth, VS)
    assert base["voi_merge"] > ours["voi_merge"] + 0.5
    assert base["arand"] > ours["arand"] + 0.2


def test_agglomerate_mean_affinity() -> None:
    pairs = np.array([[1, 2], [2, 3], [1, 3]], np.uint64)
    sums = np.array([9.0, 1.0, 0.9])
    counts = np.array([10, 10, 1])
    m = segment.agglomerate(pairs, sums, counts, 0.5)
    # 1-2 merge (0.9); then {1,2}-3 mean = (1.0 + 0.9) / 11 < 0.5: stays apart
    assert m.get(2, 2) == m.get(1, 1) and 3 not in m


# --- compiled kernels against plain-Python references on small arrays -------------------

_STEPS = [(0, -1), (0, 1), (1, -1), (1, 1), (2, -1), (2, 1)]


def _edge(affs: np.ndarray, v: tuple[int, int, int], c: int, d: int) -> tuple[
        tuple[int, int, int], float] | None:
    """Neighbour of v along axis c, direction d, with the affinity of their edge."""
    u = list(v)
    u[c] += d
    if not 0 <= u[c] < affs.shape[1 + c]:
        return None
    hi = v if d < 0 else tuple(u)
    return (u[0], u[1], u[2]), float(affs[(c, *hi)])


def _random_affs(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    return rng.random((3, *shape)).astype(np.float32)


@pytest.mark.parametrize("shape", [(5, 6, 7), (1, 6, 7), (5, 1, 7), (5, 6, 1)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_region_graph_matches_python_loop(shape: tuple[int, int, int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    lab = rng.integers(0, 6, shape).astype(np.uint32)
    lab[:, :3] = rng.integers(0, 3)  # a block of one label: faces repeat
    affs = _random_affs(rng, lab.shape)
    ref: dict[tuple[int, int], list[float]] = {}
    for v in np.ndindex(lab.shape):
        for c in range(3):
            e = _edge(affs, v, c, -1)
            if e is None:
                continue
            a, b = int(lab[v]), int(lab[e[0]])
            if a == 0 or b == 0 or a == b:
                continue
            r = ref.setdefault((min(a, b), max(a, b)), [0.0, 0])
            r[0] += e[1]
            r[1] += 1
    pairs, sums, counts = segment.region_graph(lab, affs)
    assert [tuple(p) for p in pairs.tolist()] == sorted(ref)
    np.testing.assert_allclose(sums, [ref[k][0] for k in sorted(ref)], rtol=1e-12)
    assert counts.tolist() == [ref[k][1] for k in sorted(ref)]


def test_region_graph_of_more_contacts_than_first_room_matches_numpy(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Random labels give about three contacts per voxel, more than the room a block of
    the region graph first gets, so it counts them again with more."""
    rng = np.random.default_rng(7)
    lab = rng.integers(0, 50_000, (16, 48, 40)).astype(np.uint64)
    affs = _random_affs(rng, lab.shape)
    keys, weights = [], []
    for c in range(3):
        lo, hi = neighbour_slices(c)
        a, b, w = lab[hi].ravel(), lab[lo].ravel(), affs[c][hi].ravel()
        ok = (a != 0) & (b != 0) & (a != b)
        keys.append(np.stack([np.minimum(a, b)[ok], np.maximum(a, b)[ok]], axis=1))
        weights.append(w[ok].astype(np.float64))
    ref, inv = np.unique(np.concatenate(keys), axis=0, return_inverse=True)
    passes = []
    kernel = segment._region_graph_kernel
    monkeypatch.setattr(segment, "_region_graph_kernel",
                        lambda *a: passes.append(kernel(*a)))
    pairs, sums, counts = segment.region_graph(lab, affs)
    assert len(passes) > 1  # the first room was too small
    np.testing.assert_array_equal(pairs, ref)
    np.testing.assert_allclose(sums, np.bincount(inv.ravel(), np.concatenate(weights)),
                               rtol=1e-12)
    np.testing.assert_array_equal(counts, np.bincount(inv.ravel()))


def _partition(mapping: dict[int, int], nodes: set[int]) -> set[frozenset[int]]:
    groups: dict[int, set[int]] = {}
    for n in nodes:
        groups.setdefault(mapping.get(n, n), set()).add(n)
    return {frozenset(g) for g in groups.values()}


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("prior", [0.0, 2.0])
def test_agglomerate_matches_naive_greedy(seed: int, prior: float) -> None:
    rng = np.random.default_rng(seed)
    n = 12
    cand = [(a, b) for a in range(1, n + 1) for b in range(a + 1, n + 1)]
    pick = rng.choice(len(cand), 30, replace=False)
    pairs = np.array([cand[i] for i in pick], np.uint64)
    counts = rng.integers(1, 20, len(pairs))
    sums = counts * rng.random(len(pairs))
    got = _partition(segment.agglomerate(pairs, sums, counts, 0.4, prior), set(range(1, n + 1)))
    # naive: recompute every cluster pair's mean from the original edges, merge the best
    cluster = {i: i for i in range(1, n + 1)}
    while True:
        tot: dict[tuple[int, int], list[float]] = {}
        for (a, b), s, c in zip(pairs.tolist(), sums.tolist(), counts.tolist(), strict=True):
            ca, cb = cluster[a], cluster[b]
            if ca != cb:
                t = tot.setdefault((min(ca, cb), max(ca, cb)), [0.0, 0])
                t[0] += s
                t[1] += c
        if not tot:
            break
        (ca, cb), (s, c) = max(tot.items(), key=lambda kv: kv[1][0] / (kv[1][1] + prior))
        if s / (c + prior) <= 0.4:
            break
        for k, v in cluster.items():
            if v == cb:
                cluster[k] = ca
    assert got == _partition(cluster, set(range(1, n + 1)))


def _reference_grow(lab: np.ndarray, affs: np.ndarray, t: float, layers: int) -> np.ndarray:
    """Synchronous growth, one voxel at a time: each layer every unlabelled voxel takes
    the label of its strongest edge above t to a voxel labelled before the layer."""
    ref = lab.copy()
    for _ in range(layers):
        new = {}
        for v in zip(*np.nonzero(ref == 0), strict=True):
            best, best_a = 0, np.float32(t)
            for c, d in _STEPS:
                e = _edge(affs, v, c, d)
                if e is not None and ref[e[0]] != 0 and np.float32(e[1]) > best_a:
                    best, best_a = int(ref[e[0]]), np.float32(e[1])
            if best:
                new[v] = best
        if not new:
            break
        for v, b in new.items():
            ref[v] = b
    return ref


@pytest.mark.parametrize("shape", [(4, 7, 8), (1, 9, 8), (5, 1, 9), (6, 7, 1)])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("layers", [1, 2, 64])
def test_grow_matches_synchronous_reference(shape: tuple[int, int, int], seed: int,
                                            layers: int) -> None:
    rng = np.random.default_rng(seed)
    affs = _random_affs(rng, shape)
    lab = np.where(rng.random(shape) < 0.08, rng.integers(1, 5, shape), 0).astype(np.uint32)
    ref = _reference_grow(lab, affs, 0.4, layers)
    segment.grow(lab, affs, 0.4, layers)
    np.testing.assert_array_equal(lab, ref)


def _reference_components(mask: np.ndarray, affs: np.ndarray, t: float,
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
            for c, d in _STEPS:
                e = _edge(affs, w, c, d)
                if e is not None and mask[e[0]] and not out[e[0]] and e[1] > t:
                    out[e[0]] = n
                    queue.append(e[0])
    return _keep_large(out, min_size)


def _keep_large(lab: np.ndarray, min_size: int) -> np.ndarray:
    """Zero labels under min_size voxels, number the others 1.. by first appearance."""
    ids, first, sizes = np.unique(lab.reshape(-1), return_index=True, return_counts=True)
    keep = (ids != 0) & (sizes >= min_size)
    new = np.zeros(int(ids.max()) + 1 if len(ids) else 1, np.int64)
    new[ids[keep][np.argsort(first[keep])]] = np.arange(1, int(keep.sum()) + 1)
    return new[lab]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_threshold_components_match_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    affs = _random_affs(rng, (4, 6, 7))
    strong = affs > 0.6
    mask = np.zeros(affs.shape[1:], bool)
    for c in range(3):  # both ends of every edge inside the volume above 0.6
        lo, hi = neighbour_slices(c)
        edge = strong[c][hi]
        mask[hi] |= edge
        mask[lo] |= edge
    ref = _reference_components(mask, affs, 0.6)
    got = segment.threshold_components(affs, 0.6, min_size=1)
    np.testing.assert_array_equal(got, ref)  # same numbering: order of first appearance
    sizes = np.bincount(ref.reshape(-1))
    got3 = segment.threshold_components(affs, 0.6, min_size=3)
    keep = (sizes >= 3)[ref] & (ref != 0)
    assert ((got3 != 0) == keep).all()
    assert len(np.unique(got3[keep])) == int((sizes[1:] >= 3).sum())


@pytest.mark.parametrize("vs", [(40.0, 16.0, 16.0), (8.0, 8.0, 8.0), (30.0, 10.0, 7.0)])
@pytest.mark.parametrize("dist", [0.0, 12.0, 20.0, 45.0, 500.0])
def test_erode_is_thresholded_edt(vs: tuple[float, float, float], dist: float) -> None:
    from scipy import ndimage

    rng = np.random.default_rng(int(dist))
    core = ndimage.binary_opening(rng.random((9, 12, 13)) < 0.8)
    ref = ndimage.distance_transform_edt(core, sampling=vs) > dist
    np.testing.assert_array_equal(segment.erode(core, vs, dist), ref)
    full = np.ones_like(core)
    full[0, 0, 0] = False  # one background voxel: a large ball erodes everything
    ref = ndimage.distance_transform_edt(full, sampling=vs) > dist
    np.testing.assert_array_equal(segment.erode(full, vs, dist), ref)


@pytest.mark.parametrize("dist", [30.0, 63.0, 64.0, 65.0, 100.0, 130.0])
def test_erode_rows_of_several_words_is_thresholded_edt(dist: float) -> None:
    """Rows of 150 voxels (three 64-bit words) and balls reaching past a word along x
    (1 nm voxels along x): erosion shifts the core bits across words."""
    from scipy import ndimage

    vs = (40.0, 4.0, 1.0)
    core = np.ones((8, 6, 150), bool)
    core[1, 2, 20] = core[1, 4, 90] = core[6, 0, 149] = False
    ref = ndimage.distance_transform_edt(core, sampling=vs) > dist
    assert ref.any() and not ref.all()
    np.testing.assert_array_equal(segment.erode(core, vs, dist), ref)


def _reference_segmentation(affs: np.ndarray, p: segment.SegParams) -> np.ndarray:
    """`seeded_segmentation` composed of plain references: scipy's EDT, breadth-first
    components, voxel-by-voxel growth, a Python region graph, the greedy agglomeration
    (tested against a naive one above) and numpy renumbering."""
    from scipy import ndimage

    inner = np.ones(affs.shape[1:], np.float32)
    for c in (1, 2):  # the smallest in-plane affinity of each voxel (edges only)
        lo, hi = neighbour_slices(c)
        inner[hi] = np.minimum(inner[hi], affs[c][hi])
        inner[lo] = np.minimum(inner[lo], affs[c][hi])
    core = inner > np.float32(p.seed_threshold)
    seeds = core & (ndimage.distance_transform_edt(core, sampling=VS) > p.seed_distance_nm)
    lab = _reference_components(seeds, affs, p.seed_threshold, max(p.min_seed, 1))
    lab = _reference_grow(lab, affs, p.grow_threshold, p.grow_layers)
    free = lab == 0
    linked = np.zeros_like(free)
    for v in zip(*np.nonzero(free), strict=True):
        linked[v] = any(e is not None and free[e[0]] and e[1] > np.float32(p.grow_threshold)
                        for e in (_edge(affs, v, c, d) for c, d in _STEPS))
    rescued = _reference_components(linked, affs, p.grow_threshold, max(p.min_seed, 2))
    lab = np.where(rescued != 0, rescued + lab.max(), lab)
    lab = _reference_grow(lab, affs, p.grow_threshold, 64)
    faces: dict[tuple[int, int], list[float]] = {}
    for v in np.ndindex(lab.shape):
        for c in range(3):
            e = _edge(affs, v, c, -1)
            a, b = int(lab[v]), int(lab[e[0]]) if e is not None else 0
            if e is not None and a and b and a != b:
                f = faces.setdefault((min(a, b), max(a, b)), [0.0, 0])
                f[0] += e[1]
                f[1] += 1
    keys = sorted(faces)
    merged = segment.agglomerate(np.array(keys, np.uint64).reshape(-1, 2),
                                 np.array([faces[k][0] for k in keys]),
                                 np.array([faces[k][1] for k in keys]), p.merge_threshold,
                                 p.prior_faces)
    lab = np.vectorize(lambda x: merged.get(int(x), int(x)))(lab)
    return _keep_large(lab, p.min_size)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("params", [
    segment.SegParams(min_size=20),
    segment.SegParams(seed_threshold=0.7, grow_threshold=0.5, seed_distance_nm=0.0,
                      min_seed=1, min_size=1, grow_layers=1, prior_faces=2.0),
    segment.SegParams(seed_threshold=0.75, grow_threshold=0.65, seed_distance_nm=30.0,
                      merge_threshold=0.6, min_size=5)])
def test_seeded_segmentation_matches_composed_reference(seed: int,
                                                        params: segment.SegParams) -> None:
    """The whole segmentation (one pass over the voxels, then the active ones only)
    equals its stages done one by one the plain way, on cells with noisy, leaky
    boundaries (where every knob above changes the result)."""
    affs = _noisy_cells((6, 15, 16), seed)
    got = segment.seeded_segmentation(affs, VS, params)
    ref = _reference_segmentation(affs, params)
    assert got.max() > 1  # several segments: the test sees merges and sizes
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("shape", [(5, 1, 17), (4, 9, 1), (1, 12, 2), (3, 7, 3)])
def test_thin_volumes_match_composed_reference(shape: tuple[int, int, int]) -> None:
    """Rows, sections or volumes one or two voxels thick: the scan kernel does a row's
    first and last voxels apart from the others, and a word of flags can span rows. The
    affinities across the volume's faces (to no voxel) are strong and must count for
    nothing, as a network's output there would."""
    p = segment.SegParams(seed_threshold=0.7, grow_threshold=0.5, seed_distance_nm=0.0,
                          min_seed=1, min_size=1)
    for seed in range(3):
        affs = _noisy_cells(shape, seed)
        affs[0, 0] = affs[1, :, 0] = affs[2, :, :, 0] = 0.99
        np.testing.assert_array_equal(segment.seeded_segmentation(affs, VS, p),
                                      _reference_segmentation(affs, p))


def _noisy_cells(shape: tuple[int, int, int], seed: int) -> np.ndarray:
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


def test_seed_threshold_below_growth_is_refused() -> None:
    with pytest.raises(ValueError, match=r"seed_threshold \(0.5\) must be at least"):
        segment.SegParams(seed_threshold=0.5, grow_threshold=0.7)


class _MemoryStore:
    """A label store in memory (the pipeline uses a zarr array)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.labels = np.zeros(shape, np.uint64)
        self.writes = 0

    def write(self, z0: int, labels: np.ndarray) -> None:
        self.labels[z0:z0 + labels.shape[0]] = labels
        self.writes += 1

    def read(self, z0: int, z1: int) -> np.ndarray:
        return self.labels[z0:z1].copy()


def _blockwise(affs: np.ndarray, slab: int) -> _MemoryStore:
    store = _MemoryStore(affs.shape[1:])
    reads: list[tuple[int, int]] = []

    def read(z0: int, z1: int) -> np.ndarray:
        reads.append((z0, z1))
        return affs[:, z0:z1]

    n = segment.seeded_segmentation_blockwise(read, affs.shape[1:], VS, store, slab=slab)
    assert all(z1 - z0 <= slab for z0, z1 in reads)  # never more than a slab in memory
    assert n == len(np.unique(store.labels)) - int((store.labels == 0).any())
    return store


def _true_affs(seed: int) -> tuple[np.ndarray, np.ndarray]:
    s, _ = _truth(seed)
    cls = boundary.voxel_classes(s.labels, s.clefts != 0)
    probs = np.stack([(cls == k).astype(np.float32) for k in range(boundary.N_CLASSES)])
    return boundary.affinities_from_probabilities(probs), s.labels


def test_blockwise_with_one_slab_is_the_whole_volume_segmentation() -> None:
    affs = _random_affs(np.random.default_rng(5), (12, 20, 24))
    affs[affs < 0.3] = 0.0
    store = _blockwise(affs, slab=12)
    np.testing.assert_array_equal(store.labels, segment.seeded_segmentation(affs, VS))


@pytest.mark.parametrize("slab", [7, 16])
def test_blockwise_rejoins_cells_across_slab_faces(slab: int) -> None:
    """On true affinities, slabs of a few sections give the same partition as the whole
    volume at once: every cell cut by a slab face is joined again."""
    from connectome_query.reconstruct import metrics

    affs, _ = _true_affs(1)
    whole = segment.seeded_segmentation(affs, VS)
    store = _blockwise(affs, slab)
    split, merge = metrics.voi(whole, store.labels)
    # pieces under `min_seed` voxels inside one slab stay unlabelled (a few hundredths of
    # a bit); a cell left cut at a face would cost about a tenth of a bit or more
    assert split + merge < 0.05
    # and each segment that crosses a face is one id on both sides of it
    for z in range(slab, affs.shape[1], slab):
        lo, hi = store.labels[z - 1], store.labels[z]
        linked = (whole[z - 1] == whole[z]) & (whole[z] != 0) & (lo != 0) & (hi != 0)
        assert linked.sum() > 50
        assert (lo[linked] == hi[linked]).mean() > 0.99


def test_blockwise_refuses_a_wrong_block() -> None:
    affs = _random_affs(np.random.default_rng(0), (8, 10, 10))
    with pytest.raises(ValueError, match=r"read_affs\(0, 4\) returned shape"):
        segment.seeded_segmentation_blockwise(lambda z0, z1: affs, affs.shape[1:], VS,
                                              _MemoryStore(affs.shape[1:]), slab=4)
    with pytest.raises(ValueError, match="slab must be at least one section"):
        segment.seeded_segmentation_blockwise(lambda z0, z1: affs, affs.shape[1:], VS,
                                              _MemoryStore(affs.shape[1:]), slab=0)
