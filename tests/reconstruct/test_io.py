"""Files of the reconstruction stage: a synthetic EM directory as written, truth included."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from connectome_query.reconstruct import io, synth


def test_written_truth(clean_dir: Path) -> None:
    info = io.read_json(clean_dir / "volume.json", "volume")
    assert info["voxel_size_nm"] == [16.0, 16.0, 40.0]
    assert info["shape_zyx"] == [64, 64, 64]
    for name in ("image.zarr", "image.precomputed", "truth/segmentation.zarr",
                 "truth/segmentation.precomputed", "truth/compartments.zarr",
                 "truth/clefts.zarr", "truth/skeletons.parquet"):
        assert (clean_dir / name).exists(), name
    segs = io.read_table(clean_dir / "truth/segments.parquet", "t", io.SEGMENT_COLUMNS)
    syn = io.read_table(clean_dir / "truth/synapses.parquet", "t", io.SYNAPSE_COLUMNS)
    assert set(segs["predicted_class"]) <= {"pyramidal", "chandelier"}
    assert "chandelier" in set(segs["predicted_class"])
    cls = dict(zip(segs["segment_id"], segs["predicted_class"], strict=True))
    ch = syn[syn["pre_segment_id"].map(cls) == "chandelier"]
    assert len(ch) > 0
    # chandelier boutons synapse mostly onto AIS
    assert (ch["post_compartment"] == "ais").mean() >= 0.5
    assert set(syn["post_compartment"]) <= {"soma", "axon", "ais", "dendrite", "unknown"}
    seg = io.read_block(io.open_zarr(clean_dir / "truth/segmentation.zarr"),
                        (slice(None),) * 3, clean_dir)
    assert seg.dtype == np.uint64
    present = set(np.unique(seg).tolist()) - {0}
    assert present == set(segs["segment_id"].tolist())
    assert (syn["size_voxels"] >= synth.MIN_TRUTH_CLEFT_VOXELS).all()
    assert list((clean_dir / "truth" / "skeletons").glob("*.swc"))


def test_noisy_has_artefacts(noisy_dir: Path) -> None:
    info = io.read_json(noisy_dir / "volume.json", "volume")
    assert info["missing_sections"] and info["shifted_sections"]
    img = io.read_block(io.open_zarr(noisy_dir / "image.zarr"), (slice(None),) * 3, noisy_dir)
    z = info["missing_sections"][0]
    assert img[z].std() < 1.0 < img[z + 1].std()
