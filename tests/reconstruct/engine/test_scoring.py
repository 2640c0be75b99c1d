"""Scoring on the engine reads the truth's skeleton nodes block by block, and gives the ERL and
NERL of the whole-table computation (`scoring.segmentation_scores`, which holds the table and
the volumes in memory): uneven blocks, 2 worker processes, a skeleton table of many row groups,
skeletons crossing block faces, a split, a merger, a cell in two pieces, nodes on background."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from distributed import Client

from connectome_query.reconstruct import boundary, io, scoring, segment
from connectome_query.reconstruct.engine import context, truth_nodes
from connectome_query.reconstruct.engine import scoring as engine_scoring
from connectome_query.reconstruct.engine.cluster import ClusterSpec
from connectome_query.reconstruct.engine.manifest import Manifest
from connectome_query.reconstruct.engine.runner import Engine

VS = (40.0, 16.0, 16.0)
SHAPE = (12, 40, 36)
BLOCK = (5, 14, 11)  # divides no side
MIN_SIZE = 20

_TUBES = [  # (cell, axis, fixed (z, y, x) of the other two axes, start, stop)
    (1, 2, (3, 8, 0), 2, 34), (2, 1, (6, 0, 20), 2, 38), (3, 0, (0, 30, 8), 0, 12),
    (4, 2, (9, 20, 0), 3, 30), (5, 1, (0, 0, 30), 2, 16), (5, 1, (0, 0, 30), 24, 38)]


def _tube_voxels(axis: int, fixed: tuple[int, int, int], lo: int, hi: int) -> np.ndarray:
    """(z, y, x) voxels of a tube's centre line."""
    at = np.tile(np.array(fixed), (hi - lo, 1))
    at[:, axis] = np.arange(lo, hi)
    return at


def _volumes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(truth, segmentation, affinities): tubes of radius 2 px (1 section); the segmentation
    splits cell 1, merges cells 2 and 3, misses a stretch of cell 4."""
    gt = np.zeros(SHAPE, np.uint64)
    zz, yy, xx = np.indices(SHAPE)
    grid = (zz, yy, xx)
    for cell, axis, fixed, lo, hi in _TUBES:
        others = [a for a in range(3) if a != axis]
        d2 = sum(((grid[a] - fixed[a]) * (2.0 if a == 0 else 1.0)) ** 2 for a in others)
        along = (grid[axis] >= lo) & (grid[axis] < hi)
        gt[(d2 <= 4.5) & along] = cell
    seg = gt.copy()
    seg[(gt == 1) & (xx >= 18)] = 11
    seg[gt == 2] = 3
    seg[(gt == 4) & (xx >= 12) & (xx < 15)] = 0
    affs = boundary.true_affinities(gt).astype(np.float32)
    affs[2][:, :, 25] = 0.1  # the baseline splits what crosses x = 25
    return gt, seg, affs


def _skeletons() -> pd.DataFrame:
    """One node per centre-line voxel, parent the one before, ids shuffled; places in the
    tissue beside the frame's (lengths are measured there); one parent outside the table."""
    rows = []
    rng = np.random.default_rng(5)
    for cell, axis, fixed, lo, hi in _TUBES:
        vox = _tube_voxels(axis, fixed, lo, hi)
        for k, v in enumerate(vox):
            rows.append((cell, k, v))
    ids = rng.permutation(len(rows)) + 100
    node, parent, cell_of, xyz = [], [], [], []
    for i, (cell, k, v) in enumerate(rows):
        node.append(ids[i])
        parent.append(ids[i - 1] if k > 0 else -1)
        cell_of.append(cell)
        xyz.append(v[::-1] * np.array(VS[::-1]))
    parent[7] = 99_999  # no such node: no edge
    xyz = np.array(xyz, float)
    tissue = xyz * np.array([1.0, 1.02, 0.97]) + 3.0
    return pd.DataFrame({"segment_id": cell_of, "node_id": node, "parent_id": parent,
                         "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
                         "tissue_x": tissue[:, 0], "tissue_y": tissue[:, 1],
                         "tissue_z": tissue[:, 2]})


def _empty(columns: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object if t in ("", "str") else t)
                         for c, t in columns.items()})


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory, cluster: ClusterSpec
           ) -> tuple[dict[str, object], pd.DataFrame, tuple[np.ndarray, ...], Path]:
    tmp = tmp_path_factory.mktemp("scoring")
    gt, seg, affs = _volumes()
    em, run_dir = tmp / "em", tmp / "run"
    (em / "truth").mkdir(parents=True)
    run_dir.mkdir()
    io.write_zarr(em / "truth" / "segmentation.zarr", gt)
    io.write_zarr(run_dir / "segmentation.zarr", seg)
    io.write_zarr(tmp / "affinities.zarr", affs)
    sk = _skeletons()
    pq.write_table(pa.Table.from_pandas(sk, preserve_index=False),
                   em / "truth" / "skeletons.parquet", row_group_size=17)
    run = context.Run(str(run_dir), str(em), SHAPE, VS, BLOCK,
                      segment.SegParams(min_size=MIN_SIZE))
    truth = {"segments": pd.DataFrame({"segment_id": [1, 2, 3, 4, 5],
                                       "predicted_class": ["a"] * 5,
                                       "soma_x": [np.nan] * 5}),
             "synapses": _empty(io.SYNAPSE_COLUMNS)}
    segments = pd.DataFrame({"segment_id": [1, 3, 4, 5, 11], "predicted_class": ["a"] * 5,
                             "soma_x": [np.nan] * 5})
    with Client(cluster.scheduler) as client:
        res = engine_scoring.score(Engine(client, Manifest(run_dir)), run,
                                   tmp / "affinities.zarr", truth,
                                   _empty(io.SYNAPSE_COLUMNS), segments)
    return res, sk, (gt, seg, affs), run_dir


def test_blockwise_erl_equals_the_whole_table_computation(
        scored: tuple[dict[str, object], pd.DataFrame, tuple[np.ndarray, ...], Path]) -> None:
    res, sk, (gt, seg, affs), _ = scored
    truth = {"segmentation": gt, "skeletons": sk}
    want = scoring.segmentation_scores(seg, truth, VS)
    got = res["pipeline"]
    assert isinstance(got, dict)
    for key in ("erl_nm", "erl_truth_nm", "erl_truth_pieces_nm", "nerl", "nerl_truth_labels"):
        assert got[key] == pytest.approx(want[key], rel=1e-12), key
    # the case is not trivial: the split, the merger and the gap cost run length, and the
    # cell in two pieces makes the truth's pieces differ from its labels
    assert 0 < want["nerl"] < 0.8
    assert want["erl_truth_pieces_nm"] < want["erl_truth_nm"]
    base = segment.threshold_components(affs, 0.5, MIN_SIZE)
    base_want = scoring.segmentation_scores(base, truth, VS)
    base_got = res["baseline_threshold_cc"]
    assert isinstance(base_got, dict)
    assert base_got["erl_nm"] == pytest.approx(base_want["erl_nm"], rel=1e-12)
    assert base_got["erl_nm"] != pytest.approx(want["erl_truth_nm"])


def test_erl_per_cell_is_the_reports(
        scored: tuple[dict[str, object], pd.DataFrame, tuple[np.ndarray, ...], Path]) -> None:
    from connectome_query.reconstruct.report.errors import erl_per_cell

    _, sk, (_, seg, _), run_dir = scored
    got = pd.read_parquet(run_dir / engine_scoring.ERL_CELLS).set_index("cell")
    want = erl_per_cell({"skeletons": sk}, seg, VS).set_index("cell")
    assert sorted(got.index) == sorted(want.index) == [1, 2, 3, 4, 5]
    got = got.loc[want.index]
    np.testing.assert_allclose(got["cable_nm"], want["cable_nm"], rtol=1e-12)
    np.testing.assert_allclose(got["erl_nm"], want["erl_nm"], rtol=1e-12)
    np.testing.assert_array_equal(got["merged"], want["merged"])
    assert got.loc[[2, 3], "merged"].all() and not got.loc[1, "merged"]


def test_nodes_split_by_block_batch_by_batch(tmp_path: Path, cluster: ClusterSpec) -> None:
    """Every row lands once, in the block holding its voxel, whatever the row groups and
    batches; a block without nodes reads as empty."""
    sk = _skeletons()
    table = tmp_path / "skeletons.parquet"
    pq.write_table(pa.Table.from_pandas(sk, preserve_index=False), table, row_group_size=40)
    run = context.Run(str(tmp_path / "run"), str(tmp_path), SHAPE, VS, BLOCK)
    with Client(cluster.scheduler) as client:
        truth_nodes.split(Engine(client, Manifest(tmp_path / "run")), run, table,
                          tmp_path / "nodes", batch=9)
    vox = scoring.node_voxels(sk[["x", "y", "z"]].to_numpy(), VS, SHAPE)
    seen = []
    for item, box in run.grid.boxes():
        nodes = truth_nodes.load(tmp_path / "nodes", item)
        assert box.contains(nodes["vox"]).all()
        np.testing.assert_array_equal(nodes["vox"], vox[nodes["row"]])
        np.testing.assert_array_equal(nodes["node"], sk["node_id"].to_numpy()[nodes["row"]])
        np.testing.assert_array_equal(nodes["at"][:, 1], sk["tissue_y"].to_numpy()[nodes["row"]])
        seen.append(nodes["row"])
    rows = np.concatenate(seen)
    np.testing.assert_array_equal(np.sort(rows), np.arange(len(sk)))
    assert sum(len(s) == 0 for s in seen) > 0
