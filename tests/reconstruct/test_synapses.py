"""Synapse detection on small hand-made volumes whose answer follows from how they are
drawn: which side holds the vesicle cloud, which cells touch inside a cleft."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.ndimage as ndi

from connectome_query.reconstruct import synapses

VS = (40.0, 16.0, 16.0)
SHAPE = (16, 40, 40)
INTERIOR, MEMBRANE, CLEFT, VESICLES = 200.0, 60.0, 20.0, 120.0


def _ball(centre_zyx: tuple[float, float, float], r_nm: float) -> np.ndarray:
    z, y, x = np.meshgrid(*(np.arange(n) for n in SHAPE), indexing="ij")
    d2 = sum(((g - c) * v) ** 2 for g, c, v in zip((z, y, x), centre_zyx, VS, strict=True))
    return d2 <= r_nm**2


def _render(seg: np.ndarray, cleft: np.ndarray, clouds: list[np.ndarray],
            seed: int = 0) -> np.ndarray:
    """Image: bright cytoplasm, dark in-plane membranes, vesicle clouds, darker clefts."""
    img = np.full(seg.shape, INTERIOR)
    mem = np.zeros(seg.shape, bool)
    for ax in (1, 2):
        hi = [slice(None)] * 3
        hi[ax] = slice(1, None)
        lo = [slice(None)] * 3
        lo[ax] = slice(None, -1)
        d = seg[tuple(hi)] != seg[tuple(lo)]
        mem[tuple(hi)] |= d
        mem[tuple(lo)] |= d
    img[mem] = MEMBRANE
    for c in clouds:
        img[c & ~mem] = VESICLES
    img[cleft] = CLEFT
    img += np.random.default_rng(seed).normal(0, 6, seg.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _two_halves() -> np.ndarray:
    seg = np.full(SHAPE, 1, np.uint64)
    seg[:, :, 20:] = 2
    return seg


def _cleft_across(seg: np.ndarray, y0: int, y1: int, z0: int = 6, z1: int = 11) -> np.ndarray:
    """Cleft voxels on both membranes of the x = 19 | 20 interface, rows y0..y1-1."""
    c = np.zeros(SHAPE, bool)
    c[z0:z1, y0:y1, 19:21] = True
    return c


@pytest.mark.parametrize("cloud_side", [1, 2])
def test_pre_is_the_side_with_the_vesicle_cloud(cloud_side: int) -> None:
    seg = _two_halves()
    cleft = _cleft_across(seg, 14, 26)
    x = 15.5 if cloud_side == 1 else 23.5
    cloud = _ball((8, 20, x), 60.0) & (seg == cloud_side)
    img = _render(seg, cleft, [cloud])
    df = synapses.detect(cleft.astype(np.float32), seg, img, VS)
    assert len(df) == 1
    assert int(df.pre_segment_id[0]) == cloud_side
    assert int(df.post_segment_id[0]) == 3 - cloud_side


def test_pre_found_when_the_segmentation_cuts_the_cloud_out() -> None:
    """A predicted segmentation may leave the dark vesicle cloud unlabelled."""
    seg = _two_halves()
    cleft = _cleft_across(seg, 14, 26)
    cloud = _ball((8, 20, 23.5), 60.0) & (seg == 2)
    img = _render(seg, cleft, [cloud])
    holed = seg.copy()
    holed[cloud & (np.arange(SHAPE[2])[None, None, :] >= 22)] = 0
    df = synapses.detect(cleft.astype(np.float32), holed, img, VS)
    assert len(df) == 1
    assert (int(df.pre_segment_id[0]), int(df.post_segment_id[0])) == (2, 1)


def test_one_bouton_onto_two_cells_gives_two_synapses() -> None:
    """One cleft component straddling contacts with two cells is split by partner pair."""
    seg = _two_halves()
    seg[:, 20:, 20:] = 3  # the right half is two cells, 2 (y < 20) and 3 (y >= 20)
    cleft = _cleft_across(seg, 8, 32)
    clouds = [_ball((8, 12, 15.5), 60.0) & (seg == 1), _ball((8, 28, 15.5), 60.0) & (seg == 1)]
    img = _render(seg, cleft, clouds)
    df = synapses.detect(cleft.astype(np.float32), seg, img, VS)
    got = sorted(zip(df.pre_segment_id.astype(int), df.post_segment_id.astype(int),
                     df.y, strict=True))
    assert [(p, q) for p, q, _ in got] == [(1, 2), (1, 3)]
    assert got[0][2] < 20 * VS[1] < got[1][2]


def test_two_touching_clefts_of_one_pair_are_split_at_the_neck() -> None:
    """Two boutons of one axon onto one cell, their clefts joined by a thin bridge."""
    seg = _two_halves()
    cleft = _cleft_across(seg, 4, 16) | _cleft_across(seg, 24, 36)
    cleft |= _cleft_across(seg, 16, 24, 8, 9)
    clouds = [_ball((8, 10, 15.5), 60.0) & (seg == 1), _ball((8, 30, 15.5), 60.0) & (seg == 1)]
    img = _render(seg, cleft, clouds)
    df = synapses.detect(cleft.astype(np.float32), seg, img, VS)
    assert len(df) == 2
    pairs = zip(df.pre_segment_id.astype(int), df.post_segment_id.astype(int), strict=True)
    assert set(pairs) == {(1, 2)}
    ys = sorted(df.y)
    assert abs(ys[0] - 9.5 * VS[1]) < 3 * VS[1]
    assert abs(ys[1] - 29.5 * VS[1]) < 3 * VS[1]


def test_a_single_cleft_is_not_split() -> None:
    seg = _two_halves()
    cleft = _cleft_across(seg, 14, 26)
    img = _render(seg, cleft, [_ball((8, 20, 15.5), 60.0) & (seg == 1)])
    assert len(synapses.detect(cleft.astype(np.float32), seg, img, VS)) == 1


def test_small_cleft_kept_only_where_the_volume_edge_cuts_it() -> None:
    seg = _two_halves()
    edge = _cleft_across(seg, 0, 3, 0, 2)  # 12 voxels minus a few: cut by the edge
    edge[1, 2, :] = False
    inner = _cleft_across(seg, 20, 23, 8, 10)
    inner[9, 22, :] = False
    assert edge.sum() == inner.sum() < 12
    clouds = [_ball((0, 1, 15.5), 60.0) & (seg == 1), _ball((8, 21, 15.5), 60.0) & (seg == 1)]
    img = _render(seg, edge | inner, clouds)
    df = synapses.detect((edge | inner).astype(np.float32), seg, img, VS)
    assert len(df) == 1
    assert df.y[0] < 5 * VS[1]


def test_contact_pairs_counts_faces_inside_the_component() -> None:
    seg = _two_halves()
    comp = _cleft_across(seg, 10, 13, 0, 2)  # 2 sections x 3 rows x 1 face each
    assert synapses.contact_pairs(comp, seg) == {(1, 2): 6}


def test_cells_touching_across_an_unlabelled_cleft_are_partners() -> None:
    """A predicted segmentation may leave the cleft itself unlabelled (a gap between
    cells); the bouton's two contacts are still told apart."""
    seg = _two_halves()
    seg[:, 20:, 20:] = 3
    cleft = _cleft_across(seg, 8, 32)
    clouds = [_ball((8, 12, 15.5), 60.0) & (seg == 1), _ball((8, 28, 15.5), 60.0) & (seg == 1)]
    img = _render(seg, cleft, clouds)
    gapped = seg.copy()
    gapped[:, :, 19:21] = 0
    df = synapses.detect(cleft.astype(np.float32), gapped, img, VS)
    pairs = zip(df.pre_segment_id.astype(int), df.post_segment_id.astype(int), strict=True)
    assert sorted(pairs) == [(1, 2), (1, 3)]


def _blockwise(prob: np.ndarray, labels: np.ndarray, image: np.ndarray,
               block: tuple[int, int, int], halo: tuple[int, int, int]) -> pd.DataFrame:
    """`synapses.find` over 3-D blocks with halos, as the engine runs it."""
    from connectome_query.reconstruct import sections

    sec = sections.Sections.from_sums(*sections.sums(image), image.shape[1] * image.shape[2])
    norm = sec.normalise(image, 0)
    rows = []
    for idx in np.ndindex(*[-(-n // b) for n, b in zip(labels.shape, block, strict=True)]):
        a = [i * b for i, b in zip(idx, block, strict=True)]
        b = [min(x + k, n) for x, k, n in zip(a, block, labels.shape, strict=True)]
        r0 = [max(x - h, 0) for x, h in zip(a, halo, strict=True)]
        r1 = [min(x + h, n) for x, h, n in zip(b, halo, labels.shape, strict=True)]
        sl = tuple(slice(x, y) for x, y in zip(r0, r1, strict=True))
        core = (tuple(x - r for x, r in zip(a, r0, strict=True)),
                tuple(x - r for x, r in zip(b, r0, strict=True)))
        rows.append(synapses.find(prob[sl], labels[sl], norm[sl], VS, origin=tuple(r0),
                                  volume=labels.shape, core=core, whole=True))
    return synapses.table(np.concatenate(rows))


@pytest.mark.parametrize("block", [(7, 64, 64), (16, 16, 16), (48, 23, 41)])
def test_blockwise_detection_equals_the_whole_volume(block: tuple[int, int, int]) -> None:
    """Block by block (with halos) the synapse table is the whole volume's, row for row,
    on a synthetic volume with its true segmentation and a soft cleft probability."""
    from connectome_query.reconstruct import synth

    plan = synth.make_plan(synth.SynthConfig((48, 64, 64), VS, "clean", 3))
    vol = synth.render(plan)
    prob = ndi.gaussian_filter((vol.clefts != 0).astype(np.float32), 0.7) * 1.6
    whole = synapses.detect(prob, vol.labels, vol.image, VS)
    assert len(whole) >= 5
    pd.testing.assert_frame_equal(_blockwise(prob, vol.labels, vol.image, block,
                                             (16, 48, 48)), whole)


def test_a_cleft_cut_by_the_halo_asks_for_more_context() -> None:
    from connectome_query.reconstruct import synth

    plan = synth.make_plan(synth.SynthConfig((48, 64, 64), VS, "clean", 3))
    vol = synth.render(plan)
    prob = ndi.gaussian_filter((vol.clefts != 0).astype(np.float32), 0.7) * 1.6
    with pytest.raises(synapses.NeedsMoreContext):
        _blockwise(prob, vol.labels, vol.image, (8, 16, 16), (1, 2, 2))
