"""The region graph against a Python loop over the faces and against numpy.

Sums are of each face's affinity rounded to a multiple of 2**-24 (exact in any order); the
references round the same way, and the sums stay within half a unit a face of the plain sums."""

from __future__ import annotations

import numpy as np
import pytest

from connectome_query.reconstruct import segment
from connectome_query.reconstruct.lattice import neighbour_slices
from connectome_query.reconstruct.segment import contacts
from tests.support.reconstruct import edge, random_affs


def _quantized(a: float) -> float:
    """An affinity as the region graph adds it: rounded to a multiple of 2**-24."""
    return float(np.floor(np.float64(np.float32(a)) * 2.0**24 + 0.5)) / 2.0**24


@pytest.mark.parametrize("shape", [(5, 6, 7), (1, 6, 7), (5, 1, 7), (5, 6, 1)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_region_graph_matches_python_loop(shape: tuple[int, int, int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    lab = rng.integers(0, 6, shape).astype(np.uint32)
    lab[:, :3] = rng.integers(0, 3)  # a block of one label: faces repeat
    affs = random_affs(rng, lab.shape)
    ref: dict[tuple[int, int], list[float]] = {}
    for v in np.ndindex(lab.shape):
        for c in range(3):
            e = edge(affs, v, c, -1)
            if e is None:
                continue
            a, b = int(lab[v]), int(lab[e[0]])
            if a == 0 or b == 0 or a == b:
                continue
            r = ref.setdefault((min(a, b), max(a, b)), [0.0, 0, 0.0])
            r[0] += _quantized(e[1])
            r[1] += 1
            r[2] += e[1]
    pairs, sums, counts = segment.region_graph(lab, affs)
    assert [tuple(p) for p in pairs.tolist()] == sorted(ref)
    assert sums.tolist() == [ref[k][0] for k in sorted(ref)]
    assert counts.tolist() == [ref[k][1] for k in sorted(ref)]
    plain = np.array([ref[k][2] for k in sorted(ref)])
    assert (np.abs(sums - plain) <= counts * 2.0**-25 + 1e-12).all()


def test_region_graph_of_more_contacts_than_first_room_matches_numpy(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Random labels give about three contacts per voxel, more than the room a block of
    the region graph first gets, so it counts them again with more."""
    rng = np.random.default_rng(7)
    lab = rng.integers(0, 50_000, (16, 48, 40)).astype(np.uint64)
    affs = random_affs(rng, lab.shape)
    keys, weights = [], []
    for c in range(3):
        lo, hi = neighbour_slices(c)
        a, b, w = lab[hi].ravel(), lab[lo].ravel(), affs[c][hi].ravel()
        ok = (a != 0) & (b != 0) & (a != b)
        keys.append(np.stack([np.minimum(a, b)[ok], np.maximum(a, b)[ok]], axis=1))
        weights.append(np.floor(w[ok].astype(np.float64) * 2.0**24 + 0.5))
    ref, inv = np.unique(np.concatenate(keys), axis=0, return_inverse=True)
    passes = []
    kernel = contacts._region_graph_kernel
    monkeypatch.setattr(contacts, "_region_graph_kernel",
                        lambda *a: passes.append(kernel(*a)))
    pairs, sums, counts = segment.region_graph(lab, affs)
    assert len(passes) > 1  # the first room was too small
    np.testing.assert_array_equal(pairs, ref)
    np.testing.assert_array_equal(sums, np.bincount(inv.ravel(), np.concatenate(weights))
                                  / 2.0**24)
    np.testing.assert_array_equal(counts, np.bincount(inv.ravel()))
