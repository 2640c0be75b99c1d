"""The engine's blocks give the one-process answer: the same partition (voxel for voxel), the
same affinities and the same synapse table, on 2 worker processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from connectome_query.reconstruct import (
    affinity_net,
    boundary,
    io,
    metrics,
    pipeline,
    scoring,
    segment,
)
from connectome_query.reconstruct import synapses as synapses_mod
from connectome_query.reconstruct.engine.cluster import ClusterSpec
from tests.support.reconstruct import VS, read_volume, write_em

SYNAPSE_KEY = ["synapse_id", "pre_segment_id", "post_segment_id", "x", "y", "z",
               "size_voxels", "confidence"]


@pytest.fixture(scope="module")
def blocks_run(tmp_path_factory: pytest.TempPathFactory, clean_dir: Path,
               cluster: ClusterSpec) -> tuple[Path, dict[str, Any]]:
    """The clean volume in blocks that do not divide it (64 = 16 x 4, not 24 or 40 x k)."""
    out = tmp_path_factory.mktemp("blocks") / "run"
    return out, pipeline.reconstruct(clean_dir, out, block=(16, 24, 40), spec=cluster)


def _no_merged_or_split_cell(a: np.ndarray, b: np.ndarray) -> None:
    """Every segment of a overlaps one segment of b, and the other way round."""
    g, p, _ = metrics.contingency(a, b)
    keep = p != 0
    assert len(np.unique(g[keep])) == len(g[keep]) and len(np.unique(p[keep])) == len(p[keep])


def test_blocks_give_the_one_block_partition_and_synapses(
        clean_run: tuple[Path, dict[str, Any]], blocks_run: tuple[Path, dict[str, Any]]) -> None:
    (one, res1), (many, res2) = clean_run, blocks_run
    assert io.read_json(one / "run.json", "run")["block_zyx"] == [64, 64, 64]
    assert len(list((many / "engine" / "seeds").glob("*.npz"))) == 4 * 3 * 2
    a, b = read_volume(one / "segmentation.zarr"), read_volume(many / "segmentation.zarr")
    np.testing.assert_array_equal(a, b)  # identical, ids too
    split, merge = metrics.voi(a, b)
    assert split + merge < 1e-3
    _no_merged_or_split_cell(a, b)
    for name in ("affinities.zarr", "clefts.zarr"):
        np.testing.assert_array_equal(read_volume(one / name), read_volume(many / name))
    s1, s2 = (pd.read_parquet(d / "synapses.parquet") for d in (one, many))
    assert len(s1) > 5
    pd.testing.assert_frame_equal(s1[SYNAPSE_KEY], s2[SYNAPSE_KEY])
    g1, g2 = (pd.read_parquet(d / "segments.parquet") for d in (one, many))
    pd.testing.assert_frame_equal(g1.drop(columns="predicted_class"),
                                  g2.drop(columns="predicted_class"))  # sizes and somata
    for key in ("voi_split", "voi_merge", "arand", "synapse_f1", "n_segments"):
        assert res1["pipeline"][key] == res2["pipeline"][key], key
    # ERL's sums are added block by block, so in another order: equal to rounding
    assert res1["pipeline"]["nerl"] == pytest.approx(res2["pipeline"]["nerl"], rel=1e-12)


def test_engine_equals_the_in_process_references(clean_dir: Path,
                                                 blocks_run: tuple[Path, dict[str, Any]],
                                                 shipped: affinity_net.AffinityNet) -> None:
    """Against the whole-volume functions in one process: the network's prediction, our
    segmentation of the engine's affinities, synapse detection on its segmentation and
    clefts, and the scores of the segmentation against the truth."""
    out = blocks_run[0]
    img = io.read_image(clean_dir, io.read_volume_info(clean_dir))
    affs, cleft = affinity_net.predict(shipped, img)
    np.testing.assert_allclose(read_volume(out / "affinities.zarr"), affs, atol=1e-6)
    np.testing.assert_allclose(read_volume(out / "clefts.zarr"), cleft, atol=1e-6)
    engine_affs = read_volume(out / "affinities.zarr")
    seg = read_volume(out / "segmentation.zarr")
    np.testing.assert_array_equal(seg, segment.seeded_segmentation(engine_affs, VS))
    whole = synapses_mod.detect(read_volume(out / "clefts.zarr"), seg, img, VS)
    got = pd.read_parquet(out / "synapses.parquet")
    pd.testing.assert_frame_equal(got[SYNAPSE_KEY], whole[SYNAPSE_KEY])
    truth = io.read_truth(clean_dir, img.shape)
    assert truth is not None
    split, merge = metrics.voi(truth["segmentation"], seg)
    assert blocks_run[1]["pipeline"]["voi_split"] == pytest.approx(split, abs=1e-9)
    assert blocks_run[1]["pipeline"]["voi_merge"] == pytest.approx(merge, abs=1e-9)
    assert blocks_run[1]["pipeline"]["arand"] == pytest.approx(
        metrics.adapted_rand(truth["segmentation"], seg), abs=1e-9)
    whole_table = scoring.segmentation_scores(seg, truth, VS)  # skeleton table in memory
    for key in ("erl_nm", "erl_truth_nm", "erl_truth_pieces_nm", "nerl", "nerl_truth_labels"):
        assert blocks_run[1]["pipeline"][key] == pytest.approx(whole_table[key], rel=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("block", [(64, 1, 64), (1, 64, 64)])
def test_blocks_one_voxel_thick(tmp_path: Path, clean_dir: Path,
                                clean_run: tuple[Path, dict[str, Any]], cluster: ClusterSpec,
                                block: tuple[int, int, int]) -> None:
    """Blocks one voxel thick along an axis, on the one-block run's affinities."""
    affs = clean_run[0] / "affinities.zarr"
    pipeline.reconstruct(clean_dir, tmp_path / "run", affinities_path=affs, block=block,
                         spec=cluster)
    seg = read_volume(tmp_path / "run" / "segmentation.zarr")
    np.testing.assert_array_equal(seg, read_volume(clean_run[0] / "segmentation.zarr"))
    s1, s2 = (pd.read_parquet(d / "synapses.parquet") for d in (clean_run[0], tmp_path / "run"))
    pd.testing.assert_frame_equal(s1[SYNAPSE_KEY], s2[SYNAPSE_KEY])


def test_a_cell_across_the_corner_of_8_blocks_and_empty_blocks(tmp_path: Path,
                                                               cluster: ClusterSpec) -> None:
    """A ball centred on the corner shared by 8 blocks, a second cell beside it, and half of
    the volume empty (blocks with nothing in them): the whole volume's labels."""
    zz, yy, xx = np.mgrid[:16, :48, :48]
    lab = (((zz - 8) * 2.5) ** 2 + (yy - 16) ** 2 + (xx - 16) ** 2 < 12**2).astype(np.uint64)
    lab[(lab == 0) & (xx > 24) & (xx < 32)] = 2
    affs = boundary.true_affinities(lab)
    em, apath = write_em(tmp_path / "em", (lab * 90 + 20).astype(np.uint8), affs)
    pipeline.reconstruct(em, tmp_path / "run", affinities_path=apath, block=(8, 16, 16),
                         spec=cluster)
    seg = read_volume(tmp_path / "run" / "segmentation.zarr")
    np.testing.assert_array_equal(seg, segment.seeded_segmentation(affs, VS))
    assert seg[8, 16, 16] != 0 and len(np.unique(seg[lab == 1])) == 1
    assert not seg[:, 32:, 32:].any()  # the empty blocks stay empty


def _swc(path: Path) -> np.ndarray:
    """Rows (id, type, x, y, z, radius, parent) of an SWC file."""
    return np.loadtxt(path, comments="#", ndmin=2)


def _cable(rows: np.ndarray) -> float:
    at = {int(i): k for k, i in enumerate(rows[:, 0])}
    kids = [k for k, p in enumerate(rows[:, 6]) if p >= 0]
    parents = [at[int(rows[k, 6])] for k in kids]
    return float(np.linalg.norm(rows[kids, 2:5] - rows[parents, 2:5], axis=1).sum())


def test_skeletons_joined_across_block_faces(clean_run: tuple[Path, dict[str, Any]],
                                             blocks_run: tuple[Path, dict[str, Any]]) -> None:
    """Skeletons are made per block (TEASAR's paths depend on the block), so they are not the
    one-block run's vertex for vertex; but the same segments get one, each in no more parts
    than its segment has pieces of tissue (pieces meeting at a face were joined), inside its
    own segment, with no less cable than the one-block skeleton's, give or take."""
    import cc3d

    (one, _), (many, _) = clean_run, blocks_run
    files = [{int(p.stem): p for p in (d / "skeletons").glob("*.swc")} for d in (one, many)]
    assert files[0] and set(files[0]) == set(files[1])
    seg = read_volume(many / "segmentation.zarr")
    total = [0.0, 0.0]
    for sid, path in files[1].items():
        rows = _swc(path)
        roots = int((rows[:, 6] < 0).sum())
        pieces = int(cc3d.connected_components(seg == sid, connectivity=26).max())
        assert roots <= pieces, sid
        ix = np.round(rows[:, 2:5] / np.array(VS[::-1])).astype(int)
        assert (seg[ix[:, 2], ix[:, 1], ix[:, 0]] == sid).all(), sid
        whole = _cable(_swc(files[0][sid]))
        assert _cable(rows) >= 0.75 * whole, sid
        total[0] += whole
        total[1] += _cable(rows)
    # no cable lost in all; more of it, as each block's skeleton ends at its faces and the
    # joins add edges (about half as much again at these small blocks, 16 x 24 x 40)
    assert total[0] <= 1.05 * total[1] and total[1] <= 1.6 * total[0], total
