"""`reconstruct --adapter`: the run translates the image block by block before every stage and
records it; the translation equals the adapter run by hand on the whole volume. And the
commands' named errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from connectome_query.cli.main import app
from connectome_query.reconstruct import io, pipeline, synth, synthetic_em
from connectome_query.reconstruct.adapt import model
from connectome_query.reconstruct.engine.cluster import ClusterSpec
from connectome_query.reconstruct.engine.manifest import file_sha256
from connectome_query.reconstruct.errors import ReconstructError

VS = (40.0, 16.0, 16.0)


def _save(path: Path, vs: tuple[float, float, float] = VS) -> Path:
    rng = np.random.default_rng(7)
    spec = model.generator_layers()
    io.save_adapter(path, model.Adapter(model.init(spec, rng), model.init(spec, rng),
                                        {model.VOXEL_SIZE_KEY: list(vs)}))
    return path


def test_adapter_run_dir(tmp_path: Path, cluster: ClusterSpec) -> None:
    em = tmp_path / "em"
    synthetic_em.write_synthetic_em(em, synth.SynthConfig((16, 80, 96), VS, "clean", 22, style="b"))
    weights = _save(tmp_path / "adapter.npz")
    out = tmp_path / "run"
    # blocks smaller than the volume: the translation is made of several blocks
    result = pipeline.reconstruct(em, out, spec=cluster, adapter_path=weights,
                                  block=(16, 64, 64))
    run = io.read_json(out / "run.json", "run")
    assert run["adapter"] == {"path": str(weights.resolve()), "sha256": file_sha256(weights),
                              "image": "translated.zarr"}
    assert "translation (adapter)" in run["timings_s"]
    got = io.read_block(io.open_zarr(out / "translated.zarr"), (slice(None),) * 3, out)
    img = io.read_image(em, io.read_volume_info(em))
    assert np.array_equal(got, model.translate(io.load_adapter(weights), img))
    assert not np.array_equal(got, img)
    seg = io.read_block(io.open_zarr(out / "segmentation.zarr"), (slice(None),) * 3, out)
    segs = io.read_table(out / "segments.parquet", "segments", io.SEGMENT_COLUMNS)
    assert set(segs["segment_id"]) == set(np.unique(seg).tolist()) - {0}
    assert "nerl" in result["pipeline"] and (out / "metrics.json").exists()
    # the same directory without the adapter (other inputs) is refused, naming it
    with pytest.raises(ReconstructError, match="adapter"):
        pipeline.reconstruct(em, out, spec=cluster, block=(16, 64, 64))


def test_bad_adapter_inputs_are_named(tmp_path: Path) -> None:
    runner = CliRunner()
    em = tmp_path / "em"
    r = runner.invoke(app, ["synth-em", str(em), "--size", "32,32,16", "--style", "b",
                            "--quiet"])
    assert r.exit_code == 0, r.output
    assert io.read_volume_info(em)["style"] == "b"
    r = runner.invoke(app, ["synth-em", str(tmp_path / "x"), "--style", "c", "--quiet"])
    assert r.exit_code == 2 and "style" in r.output
    bad = tmp_path / "bad.npz"
    bad.write_text("nope")
    r = runner.invoke(app, ["reconstruct", str(em), str(tmp_path / "run"), "--adapter",
                            str(bad), "--quiet"])
    assert r.exit_code == 1 and "adapter" in r.output and "bad.npz" in r.output
    other = _save(tmp_path / "other.npz", (30.0, 8.0, 8.0))
    r = runner.invoke(app, ["reconstruct", str(em), str(tmp_path / "run"), "--adapter",
                            str(other), "--quiet"])
    assert r.exit_code == 1 and "voxel size" in r.output
    assert not (tmp_path / "run").exists()
    w = str(tmp_path / "w.npz")
    for args, word in ((["--steps", "0"], "--steps"), (["--crop", "4,30,64"], "crop"),
                       (["--lr", "0"], "lr"), (["--batch", "0"], "batch")):
        r = runner.invoke(app, ["train-adapter", str(em), str(em), "--out", w, *args])
        assert r.exit_code == 2 and word in r.output, r.output
    r = runner.invoke(app, ["train-adapter", str(em), str(tmp_path / "nowhere"), "--out", w])
    assert r.exit_code == 1 and "nowhere" in r.output


def test_train_adapter_command_resumes(tmp_path: Path) -> None:
    runner = CliRunner()
    dirs = []
    for seed, style in ((1, "a"), (2, "b")):
        d = tmp_path / f"em{style}"
        synthetic_em.write_synthetic_em(
            d, synth.SynthConfig((16, 32, 32), VS, "clean", seed, style=style))
        dirs.append(str(d))
    w = tmp_path / "w.npz"
    common = ["train-adapter", *dirs, "--out", str(w), "--crop", "2,32,32", "--batch", "1",
              "--checkpoint-every", "1"]
    r = runner.invoke(app, [*common, "--steps", "2"])
    assert r.exit_code == 0, r.output
    assert len((tmp_path / "w.npz.log.jsonl").read_text().splitlines()) == 2
    r = runner.invoke(app, [*common, "--steps", "3"])  # resumes: one more step
    assert r.exit_code == 0, r.output
    assert len((tmp_path / "w.npz.log.jsonl").read_text().splitlines()) == 3
    ad = io.load_adapter(w)
    assert ad.meta["steps"] == 3 and ad.meta["segmenter"]["sha256"]
    assert ad.meta[model.VOXEL_SIZE_KEY] == list(VS)
