"""A prepared volume's defect masks are honoured: no merge through and no synapse inside a
masked region, checked against whole-volume computations made with the mask applied by hand."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from connectome_query.reconstruct import io, lattice, pipeline, segment
from connectome_query.reconstruct import synapses as synapses_mod
from connectome_query.reconstruct.align.masks import Defect
from connectome_query.reconstruct.engine.cluster import ClusterSpec
from connectome_query.reconstruct.segment import gaps
from tests.support.reconstruct import (
    GAP_RULES,
    VS,
    drifted_pairs_by_hand,
    joined_by_hand,
    read_volume,
)

PLANE = 32
"""A section masked whole (a missing section)."""


def _cut_by_hand(affs: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """Affinities with every link touching a bad voxel set to 0, link by link."""
    out = affs.copy()
    nz, ny, nx = bad.shape
    for z, y, x in zip(*np.nonzero(bad), strict=True):
        out[:, z, y, x] = 0  # its links to the voxels before it
        for c, (dz, dy, dx) in enumerate(((1, 0, 0), (0, 1, 0), (0, 0, 1))):
            if z + dz < nz and y + dy < ny and x + dx < nx:
                out[c, z + dz, y + dy, x + dx] = 0  # the next voxel's link to it
    return out


@pytest.mark.parametrize("before", [(0, 0, 0), (1, 0, 1), (1, 1, 1)])
def test_sever_cuts_every_link_of_a_masked_voxel(before):
    """A region that starts one plane into the volume along the axes `before` marks (at the
    volume's start along the others), with the mask of that plane too."""
    rng = np.random.default_rng(3)
    full = rng.random((3, 7, 8, 9)).astype(np.float32)
    bad = rng.random((7, 8, 9)) < 0.1
    region = (slice(None), *(slice(b, None) for b in before))
    got = lattice.sever(full[region], bad, before)
    np.testing.assert_array_equal(got, _cut_by_hand(full, bad)[region])
    assert (got == 0).sum() > (full[region] == 0).sum()


@pytest.fixture(scope="module")
def masked_run(tmp_path_factory: pytest.TempPathFactory, clean_dir: Path,
               clean_run: tuple[Path, dict[str, Any]], cluster: ClusterSpec
               ) -> tuple[Path, Path, np.ndarray]:
    """The clean volume with a section masked whole and a fold box over its first synapse,
    reconstructed in blocks from the clean run's affinities."""
    em = tmp_path_factory.mktemp("masked") / "em"
    shutil.copytree(clean_dir, em)
    shape = tuple(io.read_volume_info(em)["shape_zyx"])
    flags = np.zeros(shape, np.uint8)
    flags[PLANE] = np.uint8(Defect.MISSING | Defect.FILLED)
    syn = pd.read_parquet(clean_run[0] / "synapses.parquet").iloc[0]
    z, y, x = (round(float(syn[k]) / v) for k, v in zip("zyx", VS, strict=True))
    box = (slice(max(z - 3, 0), z + 4), slice(max(y - 10, 0), y + 11),
           slice(max(x - 10, 0), x + 11))
    flags[box] |= np.uint8(Defect.FOLD)
    io.write_zarr(em / "defects.zarr", flags)
    info = io.read_json(em / "volume.json", "volume")
    io.write_json(em / "volume.json", {**info, "defects": "defects.zarr"})
    out = tmp_path_factory.mktemp("masked_run") / "run"
    pipeline.reconstruct(em, out, affinities_path=clean_run[0] / "affinities.zarr",
                         block=(16, 24, 40), spec=cluster)
    return em, out, (flags & 0x1F) != 0


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two labellings split the voxels alike (0 only where the other has 0)."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()], 1), axis=0)
    return (len(pairs) == len(np.unique(a)) == len(np.unique(b))
            and not ((pairs[:, 0] == 0) ^ (pairs[:, 1] == 0)).any())


def test_no_merge_through_a_masked_section(masked_run, clean_run):
    """Segments meet across the section masked whole only where pieces of the good sections
    either side match after each piece's drift (`segment.gaps`), never through the masked
    voxels; the section then holds a joined segment where both sides show it."""
    _, out, bad = masked_run
    seg = read_volume(out / "segmentation.zarr")
    fold = bad.copy()
    fold[PLANE] = False
    assert not seg[fold].any()  # masked voxels belong to no segment...
    # ...but the section masked whole, which takes a segment where the good sections either
    # side both hold it
    np.testing.assert_array_equal(seg[PLANE], np.where(seg[PLANE - 1] == seg[PLANE + 1],
                                                       seg[PLANE - 1], 0))
    before = read_volume(clean_run[0] / "segmentation.zarr")
    spans = np.intersect1d(before[:PLANE], before[PLANE + 1:])
    assert len(spans[spans != 0]) > 3  # without the mask, cells run through the section
    # the whole volume segmented in one process from the affinities cut by hand, then the
    # segments matched across the section by overlaps counted pixel by pixel joined
    affs = read_volume(clean_run[0] / "affinities.zarr")
    want = segment.seeded_segmentation(_cut_by_hand(affs, bad), VS)
    assert not np.intersect1d(want[:PLANE], want[PLANE + 1:])[1:].size
    pairs = drifted_pairs_by_hand((want[PLANE - 3], want[PLANE - 2], want[PLANE - 1]),
                                  (want[PLANE + 1], want[PLANE + 2], want[PLANE + 3]), 2,
                                  gaps.DRIFT_OVERLAP, *GAP_RULES)
    assert len(pairs) >= 2
    cut, want = want, joined_by_hand(want, pairs)
    want[PLANE] = np.where(want[PLANE - 1] == want[PLANE + 1], want[PLANE - 1], 0)
    assert want[PLANE].any()
    assert _same_partition(seg, want)
    across = np.intersect1d(seg[:PLANE], seg[PLANE + 1:])
    assert len(across[across != 0]) == len({int(want[cut == a][0]) for a, _ in pairs})


def test_no_synapse_inside_a_masked_region(masked_run, clean_run):
    em, out, bad = masked_run
    vs = np.array(VS)

    def inside(df: pd.DataFrame) -> np.ndarray:
        idx = np.round(df[["z", "y", "x"]].to_numpy() / vs).astype(int)
        return bad[tuple(idx.T)] if len(idx) else np.zeros(0, bool)

    assert inside(pd.read_parquet(clean_run[0] / "synapses.parquet")).any()
    got = pd.read_parquet(out / "synapses.parquet")
    assert not inside(got).any()
    seg = read_volume(out / "segmentation.zarr")
    clefts = read_volume(out / "clefts.zarr")
    img = io.read_image(em, io.read_volume_info(em))
    want = synapses_mod.detect(np.where(bad, 0.0, clefts).astype(np.float32), seg, img, VS)
    cols = ["pre_segment_id", "post_segment_id", "x", "y", "z", "size_voxels", "confidence"]
    pd.testing.assert_frame_equal(got[cols].reset_index(drop=True),
                                  want[cols].reset_index(drop=True))
