"""The FFN block by block on the engine (two worker processes), with a predictor that reads the
true objects: objects across block faces and the corner of 8 blocks come back whole, in blocks
that do not divide the volume, with an empty block, cut where a masked region cuts them, and
joined across runs of wholly masked sections."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from distributed import Client

from connectome_query.reconstruct import io
from connectome_query.reconstruct.engine.cluster import ClusterSpec
from connectome_query.reconstruct.engine.grid import Box
from connectome_query.reconstruct.engine.manifest import Manifest, load_record, save_record
from connectome_query.reconstruct.engine.runner import Engine
from connectome_query.reconstruct.ffn import blockwise, inference
from connectome_query.reconstruct.ffn.model import FOV
from connectome_query.reconstruct.segment import gaps
from tests.support.reconstruct import (
    GAP_RULES,
    drifted_pairs_by_hand,
    joined_by_hand,
    same_partition,
)

VS = (40.0, 16.0, 16.0)
HALF = tuple(f // 2 for f in FOV)
BLOCK = (8, 32, 32)  # 3 x 3 x 3 blocks of a (20, 72, 72) volume, the last ones shorter


def crossing() -> np.ndarray:
    """A ball on the corner shared by 8 blocks, a slab across y and z faces, a rod across two
    x faces; block (2, 0, 0) holds nothing."""
    zz, yy, xx = np.mgrid[:20, :72, :72]
    lab = np.zeros((20, 72, 72), np.uint32)
    lab[((zz - 8) * 2.5) ** 2 + (yy - 32) ** 2 + (xx - 32) ** 2 < 12 ** 2] = 1
    lab[:, 4:60, 50:60] = 2
    lab[13:18, 62:68, 2:70] = 3
    lab[1:7, 48:56, 4:20] = 4  # inside one block's core, in its neighbours' margins
    return lab


class Oracle:
    """The true object under the FOV's centre: +4 inside it, -4 elsewhere (corners are the
    FOV's in the volume)."""

    def __init__(self, lab: np.ndarray) -> None:
        self.lab = np.pad(lab, [(h, h) for h in HALF])

    def __call__(self, lo: tuple[int, int, int], img: np.ndarray,
                 mask: np.ndarray) -> np.ndarray:
        t = self.lab[tuple(slice(a + h, a + h + f) for a, h, f in zip(lo, HALF, FOV,
                                                                        strict=True))]
        c = t[HALF]
        return np.where((t == c) & (c != 0), 4.0, -4.0).astype(np.float32)


@dataclass(frozen=True)
class TruthInputs:
    lab: np.ndarray
    bad: np.ndarray | None = None

    def image(self, box: Box) -> np.ndarray:
        return self.lab[box.slices()].astype(np.float32)

    def boundary(self, box: Box) -> np.ndarray:
        return (self.lab[box.slices()] == 0).astype(np.float32)

    def masked(self, box: Box) -> np.ndarray | None:
        return None if self.bad is None else self.bad[box.slices()]

    def predictor(self) -> inference.Predictor:
        return Oracle(self.lab)


def run_blocks(tmp: Path, cluster: ClusterSpec, inputs: TruthInputs,
               margin: tuple[int, int, int] = (4, 12, 12)) -> tuple[np.ndarray, dict[int, int]]:
    bw = blockwise.Blockwise(inputs.lab.shape, BLOCK, margin, VS, str(tmp / "engine"),  # type: ignore[arg-type]
                             inference.FFNParams(min_size=10))
    with Client(cluster.scheduler) as client:
        sizes = blockwise.segment(Engine(client, Manifest(tmp)), bw, inputs,
                                  tmp / "segmentation.zarr")
    seg = io.read_block(io.open_zarr(tmp / "segmentation.zarr"), (slice(None),) * 3, tmp)
    return seg, sizes


def test_objects_across_faces_and_the_corner_of_8_blocks_come_back_whole(
        tmp_path: Path, cluster: ClusterSpec) -> None:
    lab = crossing()
    seg, sizes = run_blocks(tmp_path, cluster, TruthInputs(lab))
    assert same_partition(lab, seg)
    assert len(np.unique(seg[(lab == 1)])) == 1 and seg[8, 32, 32] != 0  # on the corner
    assert not seg[16:, :32, :32].any()  # the empty block
    # ids 1..n by first voxel in raster order, sizes counted over the blocks
    ids, first, n = np.unique(seg, return_index=True, return_counts=True)
    assert list(ids[np.argsort(first)][ids[np.argsort(first)] != 0]) == [1, 2, 3, 4]
    assert sizes == {int(i): int(k) for i, k in zip(ids, n, strict=True) if i != 0}
    # the whole volume in one canvas gives the same partition
    whole, _ = inference.segment(lab.astype(np.float32), (lab == 0).astype(np.float32),
                                 Oracle(lab), VS, inference.FFNParams(min_size=10))
    assert same_partition(whole, seg)
    # the blocks' records, which hold the slabs, are stored deflated
    records = sorted((tmp_path / "engine" / blockwise.STAGE).glob("*.npz"))
    assert len(records) == 27
    for path in records:
        with zipfile.ZipFile(path) as z:
            assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_DEFLATED}


def test_a_record_stores_its_slabs_small_and_reads_back_identical(tmp_path: Path) -> None:
    """A block's record (`block_record`) of a region labelled with a few hundred pieces is
    saved deflated with its slabs in the least unsigned type, and reads back equal, types
    included; a tenth of the old record (slabs as uint32, not deflated) or less."""
    rng = np.random.default_rng(2)
    lab = np.repeat(np.repeat(rng.integers(0, 300, (20, 9, 9)), 8, 1), 8, 2)
    lab = inference.cut_at_mask(lab, np.zeros(lab.shape, bool))  # ids 1..n, as a canvas's
    box = Box((8, 16, 16), (16, 48, 48))  # the middle block of the (20, 72, 72) volume
    region = box.grow((4, 12, 12), lab.shape)  # type: ignore[arg-type]
    local, rec = blockwise.block_record(lab[region.slices()], box, region, (4, 12, 12),
                                        lab.shape)  # type: ignore[arg-type]
    n = int(lab[region.slices()].max())
    assert 255 < n < 65536
    slabs = [f"{side}{c}" for side in ("low", "high") for c in range(3)]
    assert all(rec[k].dtype == np.uint16 and rec[k].size for k in slabs)
    # the slabs hold the region's labels, the core's objects first: same partition as lab
    for c, k in enumerate(("low0", "low1", "low2")):
        s = blockwise.slab(box, c, box.lo[c], (4, 12, 12), lab.shape)  # type: ignore[arg-type]
        assert same_partition(lab[s.slices()], rec[k].astype(np.int64))
    assert int(rec["n"]) == int(local.max()) == np.count_nonzero(np.unique(lab[box.slices()]))
    save_record(tmp_path / "new.npz", rec, compress=True)
    save_record(tmp_path / "old.npz",
                {k: v.astype(np.uint32) if k in slabs else v for k, v in rec.items()})
    back = load_record(tmp_path / "new.npz")
    assert back.keys() == rec.keys()
    for k, v in rec.items():
        assert back[k].dtype == v.dtype and np.array_equal(back[k], v), k
    assert (tmp_path / "new.npz").stat().st_size * 10 < (tmp_path / "old.npz").stat().st_size


def test_without_overlap_matching_the_faces_split_objects(tmp_path: Path,
                                                          cluster: ClusterSpec) -> None:
    """The check can fail: with no pair matched (no object holds more than all of another),
    every object across a face comes apart, one piece per block."""
    lab = crossing()
    bw = blockwise.Blockwise(lab.shape, BLOCK, (4, 12, 12), VS,  # type: ignore[arg-type]
                             str(tmp_path / "engine"), inference.FFNParams(min_size=10),
                             fraction=1.0)
    with Client(cluster.scheduler) as client:
        blockwise.segment(Engine(client, Manifest(tmp_path)), bw, TruthInputs(lab),
                          tmp_path / "seg.zarr")
    seg = io.read_block(io.open_zarr(tmp_path / "seg.zarr"), (slice(None),) * 3, tmp_path)
    grid = bw.grid
    for k in (1, 2, 3, 4):  # one piece per block whose core the object enters
        cores = sum(bool((lab[b.slices()] == k).any()) for _, b in grid.boxes())
        assert len(np.unique(seg[lab == k])) == cores
    assert cores == 1 and len(np.unique(seg[lab == 1])) == 8  # the small one; the ball


def test_a_masked_region_cuts_objects_as_in_one_canvas(tmp_path: Path,
                                                        cluster: ClusterSpec) -> None:
    lab = crossing()
    bad = np.zeros(lab.shape, bool)
    bad[6, :, 30:] = True  # part of a section: through the slab and the small object's end
    seg, _ = run_blocks(tmp_path, cluster, TruthInputs(lab, bad))
    want = inference.cut_at_mask(lab, bad)
    assert same_partition(want, seg) and not seg[bad].any()
    assert len(np.unique(seg[(lab == 2) & ~bad])) == 2  # above and below the section
    assert len(np.unique(seg[(lab == 1) & ~bad])) == 1  # joined beside the masked part
    assert not (tmp_path / "engine" / "gaps").exists()  # no section masked whole


GAPS = ((7, 7), (15, 16))
"""Runs of sections masked whole in `through_gaps`: one section, and two."""


def through_gaps() -> np.ndarray:
    """(24, 72, 72): a rod straight through both gaps across a y face (1); a disc drifting
    2.5 px a section along y (radius 6, so across a gap its footprints overlap on less than
    half their area) through both gaps and a y face (2); a rod that ends below the second gap
    (3) and one that starts above it (4), 14 px apart."""
    zz, yy, xx = np.mgrid[:24, :72, :72]
    lab = np.zeros((24, 72, 72), np.uint32)
    lab[(yy - 32) ** 2 + (xx - 56) ** 2 <= 36] = 1
    cy = 14 + 2.5 * (np.clip(zz, 3, 21) - 3)
    lab[(yy - cy) ** 2 + (xx - 16) ** 2 <= 36] = 2
    lab[:15][((yy - 16) ** 2 + (xx - 40) ** 2 <= 25)[:15]] = 3
    lab[17:][((yy - 16) ** 2 + (xx - 54) ** 2 <= 25)[17:]] = 4
    return lab


def test_objects_join_across_runs_of_wholly_masked_sections(tmp_path: Path,
                                                            cluster: ClusterSpec) -> None:
    """Masked runs of one and two sections through which objects continue: the blockwise FFN
    joins the pieces either side as the watershed does (`segment.gaps`), the drifting one
    included, and keeps apart the rods that end and start at a gap."""
    lab = through_gaps()
    bad = np.zeros(lab.shape, bool)
    for z0, z1 in GAPS:
        bad[z0:z1 + 1] = True
    seg, sizes = run_blocks(tmp_path, cluster, TruthInputs(lab, bad))
    assert not seg[bad].any()  # masked voxels stay unlabelled
    # independent expectation: the true objects less the masked voxels
    assert same_partition(np.where(bad, 0, lab), seg)
    # the join rule counted pixel by pixel on the cut objects (one process, no blocks)
    cut = inference.cut_at_mask(lab, bad).astype(np.int64)
    pairs = set()
    for z0, z1 in GAPS:
        pairs |= drifted_pairs_by_hand((cut[z0 - 3], cut[z0 - 2], cut[z0 - 1]),
                                       (cut[z1 + 1], cut[z1 + 2], cut[z1 + 3]), z1 - z0 + 2,
                                       gaps.DRIFT_OVERLAP, *GAP_RULES)
    want = joined_by_hand(cut, pairs)
    assert same_partition(want, seg)
    # the check can fail: cut alone, each continuing object is in three pieces; unmoved,
    # the drifting disc's footprints across either gap overlap too little to join
    assert len(np.unique(cut[(lab == 2) & ~bad])) == len(np.unique(cut[(lab == 1) & ~bad])) == 3
    for z0, z1 in GAPS:
        unmoved = {tuple(map(int, p)) for p in gaps.footprint_pairs(cut[z0 - 1], cut[z1 + 1])}
        disc = (int(cut[z0 - 1][lab[z0 - 1] == 2][0]), int(cut[z1 + 1][lab[z1 + 1] == 2][0]))
        assert disc not in unmoved and unmoved  # the straight rods alone
    # ids 1..n by first voxel, sizes counted over the blocks
    ids, first, n = np.unique(seg, return_index=True, return_counts=True)
    assert list(ids[np.argsort(first)][ids[np.argsort(first)] != 0]) == [1, 2, 3, 4]
    assert sizes == {int(i): int(k) for i, k in zip(ids, n, strict=True) if i != 0}
    assert len(list((tmp_path / "engine" / "gaps").glob("*.npz"))) == len(GAPS)


def test_overlap_pairs_match_counting_by_hand() -> None:
    rng = np.random.default_rng(5)
    a = rng.integers(0, 4, (6, 9, 9)).astype(np.uint64)
    b = np.where(rng.random(a.shape) < 0.8, a + 10, rng.integers(0, 14, a.shape)).astype(
        np.uint64)
    b[a == 3] = 0
    got = {tuple(map(int, p)) for p in blockwise.overlap_pairs(a, b, 0.5)}
    want = set()
    for i in range(1, 4):
        for j in range(1, 14):
            n = int(((a == i) & (b == j)).sum())
            if n > 0.5 * (a == i).sum() and n > 0.5 * (b == j).sum():
                want.add((i, j))
    assert got == want and got == {(1, 11), (2, 12)}
    with pytest.raises(ValueError, match="overlap of labels"):
        blockwise.overlap_pairs(a, b[:-1], 0.5)


def test_a_gap_task_reads_the_numbering_once(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A gap task asks for the three sections either side of the gap and loads the
    numbering once; the pairs are those of the sections renumbered by hand."""
    from connectome_query.reconstruct.engine import gaps as engine_gaps
    from connectome_query.reconstruct.engine.context import create_sharded, write
    from connectome_query.reconstruct.engine.segmentation import save_numbering
    from connectome_query.reconstruct.segment import stitch

    rng = np.random.default_rng(3)
    shape = (8, 10, 12)
    local = rng.integers(0, 4, shape)
    local[3] = local[4] = 0
    create_sharded(tmp_path / "labels.zarr", shape, shape, "uint64")
    write(tmp_path / "labels.zarr", Box((0, 0, 0), shape), stitch.provisional(0, local))
    final = np.array([0, 7, 5, 7], np.uint64)  # local 1 and 3 are one segment
    save_numbering(tmp_path / "num.npz", stitch.Numbering(np.array([0, 3]), final[1:], 2))
    calls = []
    load = blockwise.load_numbering
    monkeypatch.setattr(blockwise, "load_numbering", lambda p: calls.append(p) or load(p))
    ids = blockwise._SectionIds(str(tmp_path / "labels.zarr"), str(tmp_path / "num.npz"),
                                shape)
    asked: list[int] = []
    got = engine_gaps._gap_task(0, np.array([[3, 4]]), shape[0],
                                lambda z: asked.append(z) or ids(z))["pairs"]
    seg = final[local]
    want = gaps.drifted_pairs(tuple(seg[:3]), tuple(seg[5:]), 3)
    assert sorted(asked) == [0, 1, 2, 5, 6, 7]
    assert len(calls) == 1
    np.testing.assert_array_equal(got, want)
