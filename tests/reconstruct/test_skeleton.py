"""Skeletons, somata and compartments (pure logic, no I/O); somata block by block against the
whole volume."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from connectome_query.reconstruct import skeleton, synth
from connectome_query.schema.vocabulary import Compartment

VS = (40.0, 16.0, 16.0)


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    plan = synth.make_plan(synth.SynthConfig((64, 64, 64), VS, "clean", 1))
    return synth.render(plan).labels


def _parts(sk: skeleton.Skel) -> int:
    n = len(sk.vertices)
    g = coo_matrix((np.ones(len(sk.edges)), (sk.edges[:, 0], sk.edges[:, 1])), shape=(n, n))
    return int(connected_components(g, directed=False)[0])


def _cable(sk: skeleton.Skel) -> float:
    v = sk.vertices
    return float(np.linalg.norm(v[sk.edges[:, 0]] - v[sk.edges[:, 1]], axis=1).sum())


def test_merge_pieces_joins_shared_vertices() -> None:
    a = skeleton.Skel(np.array([[0.0, 0, 0], [0, 0, 40]]), np.array([[0, 1]]), np.ones(2))
    b = skeleton.Skel(np.array([[0.0, 0, 40], [0, 0, 80]]), np.array([[0, 1]]), np.ones(2))
    m = skeleton.merge_pieces([a, b])
    assert len(m.vertices) == 3 and len(m.edges) == 2 and _parts(m) == 1


@pytest.mark.parametrize("block", [(16, 16, 16), (23, 29, 64)])
def test_blockwise_somata_match_the_whole_volume(labels: np.ndarray,
                                                 block: tuple[int, int, int]) -> None:
    """Candidates of 3-D blocks, each read with `soma_halo`, give the whole volume's
    somata: the same centres (the first of equally deep voxels) and radii."""
    whole = skeleton.find_somata(labels, VS)
    halo = skeleton.soma_halo(VS)
    rows = []
    for lo in np.ndindex(*[-(-n // b) for n, b in zip(labels.shape, block, strict=True)]):
        a = [i * b for i, b in zip(lo, block, strict=True)]
        b = [min(x + k, n) for x, k, n in zip(a, block, labels.shape, strict=True)]
        r0 = [max(x - h, 0) for x, h in zip(a, halo, strict=True)]
        r1 = [min(x + h, n) for x, h, n in zip(b, halo, labels.shape, strict=True)]
        region = labels[tuple(slice(x, y) for x, y in zip(r0, r1, strict=True))]
        core = (tuple(x - r for x, r in zip(a, r0, strict=True)),
                tuple(x - r for x, r in zip(b, r0, strict=True)))
        rows.append(skeleton.somata_in(region, VS, origin=tuple(r0), volume=labels.shape,
                                       core=core))
    blocks = skeleton.best_somata(np.concatenate(rows), VS, labels.shape)
    assert whole and set(blocks) == set(whole)
    for sid, (centre, r) in whole.items():
        assert blocks[sid][1] == r
        assert np.array_equal(blocks[sid][0], centre)


def test_join_regions_links_parts_meeting_in_one_region() -> None:
    """Two parts of one skeleton with vertices in one region of a face are linked by their
    closest vertices; vertices in different regions are left apart."""
    v = np.array([[0.0, 0, 0], [0, 0, 40], [0, 32, 40], [0, 32, 80], [500, 0, 0]])
    sk = skeleton.Skel(v, np.array([[0, 1], [2, 3]]), np.ones(5))
    joined = skeleton.join_regions(sk, np.array([-1, 7, 7, -1, 9]))
    assert _parts(joined) == 2 and [1, 2] in joined.edges.tolist()
    assert _parts(skeleton.join_regions(sk, np.array([-1, 7, 8, -1, -1]))) == 3


def _branched_cable() -> skeleton.Skel:
    """A path of 11 vertices 100 nm apart along x, a side branch of 4 from its middle,
    and a separate piece of 2 vertices far away."""
    main = np.stack([np.arange(11) * 100.0, np.zeros(11), np.zeros(11)], axis=1)
    side = np.stack([np.full(4, 500.0), (np.arange(4) + 1) * 100.0, np.zeros(4)], axis=1)
    far = np.array([[5000.0, 5000.0, 0.0], [5100.0, 5000.0, 0.0]])
    edges = [(i, i + 1) for i in range(10)] + [(5, 11), (11, 12), (12, 13), (13, 14),
                                               (15, 16)]
    return skeleton.Skel(np.concatenate([main, side, far]), np.array(edges, np.int64),
                         np.full(17, 80.0))


def _cable_distance(sk: skeleton.Skel, sites: list[int]) -> np.ndarray:
    """Path length from every vertex to the nearest of `sites`, by breadth-first search
    over the (unit-spaced) graph."""
    n = len(sk.vertices)
    nbrs: dict[int, list[int]] = {i: [] for i in range(n)}
    for a, b in sk.edges.tolist():
        nbrs[a].append(b)
        nbrs[b].append(a)
    dist = np.full(n, np.inf)
    frontier = list(sites)
    for s in sites:
        dist[s] = 0.0
    while frontier:
        nxt = []
        for v in frontier:
            for w in nbrs[v]:
                if dist[w] == np.inf:
                    dist[w] = dist[v] + 100.0
                    nxt.append(w)
        frontier = nxt
    return dist


@pytest.mark.parametrize(("pre", "post"), [([1], [9]), ([1, 14], [9]), ([], [12]),
                                            ([3], []), ([], [])])
def test_segment_without_soma_takes_the_role_of_its_nearest_synapse(
        pre: list[int], post: list[int]) -> None:
    """A segment cut off from its soma: axon nearer (along the cable) to a synapse it
    makes, dendrite nearer to one it receives (ties: dendrite), unknown on a piece
    with neither."""
    sk = _branched_cable()
    jitter = np.array([10.0, -20.0, 5.0])  # sites beside the cable, not on vertices
    comp = skeleton.label_compartments(sk, None, sk.vertices[pre] + jitter,
                                       sk.vertices[post] + jitter)
    d_pre = _cable_distance(sk, pre) if pre else np.full(len(comp), np.inf)
    d_post = _cable_distance(sk, post) if post else np.full(len(comp), np.inf)
    want = np.where(np.isinf(d_pre) & np.isinf(d_post), Compartment.UNKNOWN,
                    np.where(d_post <= d_pre, Compartment.DENDRITE, Compartment.AXON))
    np.testing.assert_array_equal(comp, want)
    assert (comp[15:] == Compartment.UNKNOWN).all()  # the far piece has no synapse


def _cell() -> tuple[skeleton.Skel, dict[str, np.ndarray]]:
    """A soma (centre at the origin, radius 200 nm) with three straight branches of 20
    vertices 50 nm apart leaving it along +x, +y and -y, and a loose piece far away.
    The +x branch keeps a calibre of 70 nm (an axon); the others start at 100 nm and
    taper to 20 nm, so their median over the whole branch is the thinnest."""
    steps = 250.0 + np.arange(20) * 50.0  # the first vertex just past 1.15 soma radii
    verts = [np.zeros((1, 3))]
    radius = [np.array([200.0])]
    parts: dict[str, np.ndarray] = {}
    edges: list[tuple[int, int]] = []
    for name, d, r in [("axon", (1.0, 0, 0), np.full(20, 70.0)),
                       ("dendrite_a", (0, 1.0, 0), np.linspace(100.0, 20.0, 20)),
                       ("dendrite_b", (0, -1.0, 0), np.linspace(100.0, 20.0, 20))]:
        start = sum(len(v) for v in verts)
        verts.append(steps[:, None] * np.array(d)[None, :])
        radius.append(r)
        idx = np.arange(start, start + 20)
        edges += [(0, start)] + [(start + k, start + k + 1) for k in range(19)]
        parts[name] = idx
    start = sum(len(v) for v in verts)
    verts.append(np.array([[9000.0, 9000.0, 0.0], [9050.0, 9000.0, 0.0]]))
    radius.append(np.full(2, 50.0))
    edges.append((start, start + 1))
    parts["loose"] = np.arange(start, start + 2)
    sk = skeleton.Skel(np.concatenate(verts), np.array(edges, np.int64),
                       np.concatenate(radius))
    return sk, parts


@pytest.mark.parametrize("boutons_on", ["axon", "dendrite_a"])
def test_axon_is_the_branch_of_thinnest_proximal_calibre(boutons_on: str) -> None:
    """The branch thinnest over its first AIS length is the axon, whichever branch the
    segment's boutons lie nearest to; its first AIS length of cable from the soma
    surface is the AIS; a loose piece takes the role of its nearest synapse."""
    sk, parts = _cell()
    pre = sk.vertices[parts[boutons_on][[5, 12]]] + np.array([0.0, 0.0, 30.0])
    post = sk.vertices[parts["loose"][:1]] + np.array([0.0, 0.0, 30.0])
    comp = skeleton.label_compartments(sk, (np.zeros(3), 200.0), pre, post,
                                       ais_length_nm=400.0)
    assert comp[0] == Compartment.SOMA
    from_soma = sk.vertices[parts["axon"], 0] - sk.vertices[parts["axon"][0], 0]
    want_axon = np.where(from_soma <= 400.0, Compartment.AIS, Compartment.AXON)
    np.testing.assert_array_equal(comp[parts["axon"]], want_axon)
    assert (comp[parts["dendrite_a"]] == Compartment.DENDRITE).all()
    assert (comp[parts["dendrite_b"]] == Compartment.DENDRITE).all()
    assert (comp[parts["loose"]] == Compartment.DENDRITE).all()


def test_axon_initial_segments_of_true_cells_are_found() -> None:
    """On true segmentations, every cell whose axon the skeleton joins to its soma gets
    its AIS on that branch: the vertices labelled AIS lie in the cell's true AIS or
    axon, not in its dendrites (seeds whose cells the rule taking the branch with most
    presynaptic sites got wrong: it took a dendrite for the axon in four of these six
    cells)."""
    for seed in (1, 3):
        slab = synth.render(synth.make_plan(synth.SynthConfig((64, 64, 64), VS, "clean",
                                                              seed)))
        skels = skeleton.skeletonize(slab.labels, VS)
        somata = skeleton.find_somata(slab.labels, VS)
        assert len(somata) >= 3
        for sid, soma in somata.items():
            sk = skels[sid]
            comp = skeleton.label_compartments(sk, soma, np.zeros((0, 3)))
            ix = np.round(sk.vertices / np.array(VS[::-1])).astype(int)
            true = slab.compartments[ix[:, 2], ix[:, 1], ix[:, 0]]
            ais = comp == Compartment.AIS
            assert ais.any(), (seed, sid)
            on_axon = np.isin(true[ais], [Compartment.AIS, Compartment.AXON, Compartment.SOMA])
            assert on_axon.mean() >= 0.8, (seed, sid, np.bincount(true[ais]))
