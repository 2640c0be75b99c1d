"""End-to-end: EM directory -> run directory on the engine, contract and quality against truth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from connectome_query.reconstruct import boundary, io, pipeline
from connectome_query.reconstruct.engine.cluster import ClusterSpec

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
    """Scale 0 of the Neuroglancer copy is the segmentation (a 64 x 64 section fits one chunk,
    so there is no coarser scale; the pyramid's own test is in engine/test_pyramid.py)."""
    import tensorstore as ts

    out, _ = clean_run
    z = io.read_block(io.open_zarr(out / "segmentation.zarr"), (slice(None),) * 3, out)
    spec = {"driver": "neuroglancer_precomputed",
            "kvstore": {"driver": "file", "path": str(out / "segmentation.precomputed")}}
    arr = np.asarray(ts.open(spec).result()[..., 0].read().result()).transpose(2, 1, 0)
    assert np.array_equal(arr, z)
    info = io.read_json(out / "segmentation.precomputed" / "info", "info")
    assert [s["resolution"] for s in info["scales"]] == [[16, 16, 40]]


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


def test_imported_affinities_and_classifier_clefts(clean_dir: Path, tmp_path: Path,
                                                  model_path: Path,
                                                  cluster: ClusterSpec) -> None:
    """Affinities made elsewhere (uint8) and clefts from a given voxel classifier: no
    network runs at all."""
    truth = io.read_truth(clean_dir, (64, 64, 64))
    assert truth is not None
    affs = boundary.true_affinities(truth["segmentation"])
    p = tmp_path / "affs.zarr"
    io.write_zarr(p, (affs * 255).astype(np.uint8))
    res = pipeline.reconstruct(clean_dir, tmp_path / "run", model_path, p, block=(32, 64, 64),
                               spec=cluster)
    assert res["pipeline"]["voi_merge"] < 0.3 and res["pipeline"]["nerl"] > 0.9
    run = io.read_json(tmp_path / "run" / "run.json", "run")
    assert run["clefts"] == "classifier" and "affinities (network)" not in run["timings_s"]
    assert not (tmp_path / "run" / "affinities.zarr").exists()
    assert res["pipeline"]["synapses_predicted"] > 0


def test_noisy_threshold_cc_is_worse(noisy_run: tuple[Path, dict[str, Any]]) -> None:
    _, res = noisy_run
    ours, base = res["pipeline"], res["baseline_threshold_cc"]
    assert base["voi_merge"] > ours["voi_merge"] + 0.5
    assert base["arand"] > ours["arand"]
