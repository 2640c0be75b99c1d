"""Skeletons and somata slab by slab against the whole volume (pure logic, no I/O)."""

from __future__ import annotations

import cc3d
import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from reconstruct import skeleton, synth

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


@pytest.mark.parametrize("slab", [16, 23])
def test_blockwise_skeletons_join_across_slab_faces(labels: np.ndarray, slab: int) -> None:
    """Slab by slab, every segment of the whole volume gets a skeleton, in no more parts
    than the segment has connected pieces of tissue (so pieces meeting at a slab face were
    joined), losing no cable; in all, cable is within a fifth of the whole volume's
    (skeletons end at every slab face, so there is some more, most in small segments)."""
    whole = skeleton.skeletonize(labels, VS)
    sizes = skeleton.segment_sizes(labels)
    blocks = skeleton.skeletonize_blockwise(lambda a, b: labels[a:b].copy(), labels.shape[0],
                                            VS, sizes, slab)
    assert set(blocks) == set(whole)
    for sid, sk in blocks.items():
        pieces = int(cc3d.connected_components(labels == sid, connectivity=26).max())
        assert _parts(sk) <= pieces, sid
        assert _cable(sk) >= 0.75 * _cable(whole[sid]), sid
        # every vertex lies inside its own segment
        ix = np.round(sk.vertices / np.array(VS[::-1])).astype(int)
        assert np.all(labels[ix[:, 2], ix[:, 1], ix[:, 0]] == sid), sid
    total = sum(_cable(sk) for sk in blocks.values())
    assert total == pytest.approx(sum(_cable(sk) for sk in whole.values()), rel=0.2)


def test_merge_pieces_joins_shared_vertices() -> None:
    a = skeleton.Skel(np.array([[0.0, 0, 0], [0, 0, 40]]), np.array([[0, 1]]), np.ones(2))
    b = skeleton.Skel(np.array([[0.0, 0, 40], [0, 0, 80]]), np.array([[0, 1]]), np.ones(2))
    m = skeleton.merge_pieces([a, b])
    assert len(m.vertices) == 3 and len(m.edges) == 2 and _parts(m) == 1


def test_blockwise_somata_match_the_whole_volume(labels: np.ndarray) -> None:
    whole = skeleton.find_somata(labels, VS)
    blocks = skeleton.find_somata_blockwise(lambda a, b: labels[a:b], labels.shape[0], VS, 16)
    assert whole and set(blocks) == set(whole)
    for sid, (centre, r) in whole.items():
        assert blocks[sid][1] == pytest.approx(r)
        assert np.allclose(blocks[sid][0], centre)


def test_blockwise_rejects_bad_slab(labels: np.ndarray) -> None:
    with pytest.raises(ValueError, match="slab"):
        skeleton.skeletonize_blockwise(lambda a, b: labels[a:b], 64, VS, {}, 0)


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
    want = np.where(np.isinf(d_pre) & np.isinf(d_post), synth.COMP_NONE,
                    np.where(d_post <= d_pre, synth.COMP_DENDRITE, synth.COMP_AXON))
    np.testing.assert_array_equal(comp, want)
    assert (comp[15:] == synth.COMP_NONE).all()  # the far piece has no synapse
