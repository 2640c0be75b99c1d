"""`reconstruct --segmenter ffn` end to end: the run directory the watershed writes, with the
FFN's segmentation, equal to the FFN run by hand on the run's own inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from connectome_query.reconstruct import io, pipeline, sections, synth, synthetic_em, training
from connectome_query.reconstruct.engine.cluster import ClusterSpec
from connectome_query.reconstruct.errors import ReconstructError
from connectome_query.reconstruct.ffn import inference, model

VS = (40.0, 16.0, 16.0)


def test_ffn_run_dir(tmp_path: Path, cluster: ClusterSpec) -> None:
    em = tmp_path / "em"
    synthetic_em.write_synthetic_em(em, synth.SynthConfig((16, 48, 48), VS, "clean", 21))
    out = tmp_path / "run"
    result = pipeline.reconstruct(em, out, spec=cluster, segmenter="ffn")
    run = io.read_json(out / "run.json", "run")
    assert run["segmenter"] == "ffn" and run["ffn"] == str(training.DEFAULT_FFN.resolve())
    assert "segmentation (ffn)" in run["timings_s"]
    seg = io.read_block(io.open_zarr(out / "segmentation.zarr"), (slice(None),) * 3, out)
    # the same segmentation from the run's inputs, by hand
    info = io.read_volume_info(em)
    img = io.read_image(em, info)
    affs = io.read_block(io.open_zarr(out / "affinities.zarr"), (slice(None),) * 4, out)
    net = io.load_ffn(training.DEFAULT_FFN)
    want, _ = inference.segment(sections.prepare(img), inference.boundary_of_affinities(affs),
                                model.NetPredictor(net), VS)
    assert np.array_equal(seg, want)
    # what follows the segmentation read it as they read the watershed's
    segs = io.read_table(out / "segments.parquet", "segments", io.SEGMENT_COLUMNS)
    assert set(segs["segment_id"]) == set(np.unique(seg).tolist()) - {0}
    syn = io.read_table(out / "synapses.parquet", "synapses", io.SYNAPSE_COLUMNS)
    assert set(syn["pre_segment_id"]) | set(syn["post_segment_id"]) <= set(segs["segment_id"])
    assert "nerl" in result["pipeline"] and (out / "metrics.json").exists()
    # a second run with the watershed into the same directory is refused
    with pytest.raises(ReconstructError, match="segmenter"):
        pipeline.reconstruct(em, out, spec=cluster)
    with pytest.raises(ReconstructError, match="segmenter must be"):
        pipeline.reconstruct(em, tmp_path / "other", spec=cluster, segmenter="mws")
