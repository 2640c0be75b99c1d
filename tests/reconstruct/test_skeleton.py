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
