"""End-to-end: EM directory -> run directory, contract and quality against truth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from connectome_query.reconstruct import boundary, io, pipeline
from connectome_query.reconstruct.errors import ReconstructError

CLASSES = {"pyramidal", "chandelier", "unknown"}
COMPS = {"soma", "axon", "ais", "dendrite", "unknown"}


def test_run_dir_contract(clean_run: tuple[Path, dict[str, Any]]) -> None:
    out, _ = clean_run
    run = io.read_json(out / "run.json", "run")
    assert run["voxel_size_nm"] == [16.0, 16.0, 40.0]
    assert run["shape_zyx"] == [64, 64, 64]
    assert run["created_by"] == "connectome-query"
    assert {"source", "seed"} <= set(run)
    st = io.open_zarr(out / "segmentation.zarr")
    assert str(st.dtype.numpy_dtype) == "uint64" and list(st.shape) == [64, 64, 64]
    assert list(st.domain.labels) == ["z", "y", "x"]
    assert (out / "segmentation.precomputed" / "info").exists()
    segs = io.read_table(out / "segments.parquet", "segments", io.SEGMENT_COLUMNS)
    for col, dt in io.SEGMENT_COLUMNS.items():
        assert str(segs[col].dtype) == dt, col
    assert set(segs["predicted_class"]) <= CLASSES
    syn = io.read_table(out / "synapses.parquet", "synapses", io.SYNAPSE_COLUMNS)
    for col, dt in io.SYNAPSE_COLUMNS.items():
        assert str(syn[col].dtype) == dt, col
    assert set(syn["post_compartment"]) <= COMPS
    assert syn["confidence"].between(0, 1).all()
    seg = io.read_block(st, (slice(None),) * 3, out)
    assert set(segs["segment_id"]) == set(np.unique(seg).tolist()) - {0}
    assert set(syn["pre_segment_id"]) | set(syn["post_segment_id"]) <= set(segs["segment_id"])
    assert list((out / "skeletons").glob("*.swc"))
    assert (out / "metrics.json").exists()


def test_precomputed_matches_zarr(clean_run: tuple[Path, dict[str, Any]]) -> None:
    import tensorstore as ts

    out, _ = clean_run
    z = io.read_block(io.open_zarr(out / "segmentation.zarr"), (slice(None),) * 3, out)
    pc = ts.open({"driver": "neuroglancer_precomputed",
                  "kvstore": {"driver": "file", "path": str(out / "segmentation.precomputed")}}
                 ).result()
    arr = np.asarray(pc[..., 0].read().result()).transpose(2, 1, 0)
    assert np.array_equal(arr, z)


def test_clean_quality_floor(clean_floor_runs: list[dict[str, Any]]) -> None:
    """The issue's floors on clean 64^3 volumes: NERL >= 0.9 (mean over the volumes) and
    synapse F1 >= 0.9 (pooled: matches and counts summed over the volumes). Seeds fixed
    before the volumes were made realistic; held-out seeds are in BENCHMARKS.md."""
    ps = [r["pipeline"] for r in clean_floor_runs]
    nerl = float(np.mean([p["nerl"] for p in ps]))
    tp = sum(p["synapses_matched"] for p in ps)
    n_pred = sum(p["synapses_predicted"] for p in ps)
    n_true = sum(p["synapses_true"] for p in ps)
    f1 = 2 * tp / (n_pred + n_true)
    detail = ", ".join(f"NERL {p['nerl']:.3f} F1 {p['synapse_f1']:.3f}" for p in ps)
    assert nerl >= 0.9, f"mean NERL {nerl:.3f} ({detail})"
    assert f1 >= 0.9, f"pooled synapse F1 {f1:.3f} ({detail})"


def test_slab_by_slab_run_matches_the_whole_volume_run(
        clean_dir: Path, clean_run: tuple[Path, dict[str, Any]], model_path: Path,
        tmp_path: Path) -> None:
    """A run forced to segment in slabs of 24 sections writes its affinities to zarr and
    gives almost the same segmentation as the whole-volume run of the same volume."""
    from connectome_query.reconstruct import metrics

    out = tmp_path / "run"
    res = pipeline.reconstruct(clean_dir, out, model_path, block_sections=24)
    assert (out / "affinities.zarr").exists()
    assert not (clean_run[0] / "affinities.zarr").exists()
    assert (out / "clefts.zarr").exists() and not (clean_run[0] / "clefts.zarr").exists()
    assert io.read_json(out / "run.json", "run")["segmented_in_slabs_of"] == 24
    assert io.read_json(clean_run[0] / "run.json", "run")["segmented_in_slabs_of"] is None
    read = [io.read_block(io.open_zarr(d / "segmentation.zarr"), slice(None), d)
            for d in (clean_run[0], out)]
    split, merge = metrics.voi(read[0], read[1])
    assert split + merge < 0.1, (split, merge)
    assert res["pipeline"]["n_segments"] > 0
    assert abs(res["pipeline"]["voi"] - clean_run[1]["pipeline"]["voi"]) < 0.1
    # synapses, somata and skeletons were found slab by slab, as well as in one piece
    whole, slabs = clean_run[1]["pipeline"], res["pipeline"]
    assert abs(slabs["synapse_f1"] - whole["synapse_f1"]) <= 0.1
    assert slabs["synapses_predicted"] == pytest.approx(whole["synapses_predicted"], abs=2)
    assert slabs["somata_found"] == whole["somata_found"]
    n_swc = [len(list((d / "skeletons").glob("*.swc"))) for d in (clean_run[0], out)]
    assert n_swc[1] == pytest.approx(n_swc[0], abs=1)


def test_imported_affinities(clean_dir: Path, tmp_path: Path, model_path: Path) -> None:
    truth = io.read_truth(clean_dir, (64, 64, 64))
    assert truth is not None
    affs = boundary.true_affinities(truth["segmentation"])
    p = tmp_path / "affs.zarr"
    io.write_zarr(p, (affs * 255).astype(np.uint8))
    res = pipeline.reconstruct(clean_dir, tmp_path / "run", model_path, p)
    assert res["pipeline"]["voi_merge"] < 0.3
    assert (tmp_path / "run" / "segments.parquet").exists()


def test_block_sections_must_be_positive(clean_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ReconstructError, match="block_sections"):
        pipeline.reconstruct(clean_dir, tmp_path / "run", block_sections=0)


def test_noisy_threshold_cc_is_worse(noisy_run: tuple[Path, dict[str, Any]]) -> None:
    _, res = noisy_run
    ours, base = res["pipeline"], res["baseline_threshold_cc"]
    assert base["voi_merge"] > ours["voi_merge"] + 0.5
    assert base["arand"] > ours["arand"]
