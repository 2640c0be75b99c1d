"""`reconstruct --restore`: the run restores the flagged voxels block by block before every stage,
clears their flags for later stages and records it; the restoration equals the restorer run by
hand on the whole volume. And the named errors of the restorer's inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from connectome_query.cli.main import app
from connectome_query.reconstruct import io, pipeline, synth, synthetic_em
from connectome_query.reconstruct.adapt import degrade, restore
from connectome_query.reconstruct.engine.cluster import ClusterSpec
from connectome_query.reconstruct.engine.manifest import file_sha256
from connectome_query.reconstruct.errors import ReconstructError

VS = (40.0, 16.0, 16.0)


def _save(path: Path) -> Path:
    ps = restore.init(4)
    rng = np.random.default_rng(4)
    w, b = ps[-1]
    ps[-1] = ((rng.standard_normal(w.shape) * 0.3).astype(np.float32), b)
    io.save_restorer(path, restore.Restorer(ps, {"steps": 0}))
    return path


def _damaged_em(em: Path) -> tuple[np.ndarray, np.ndarray]:
    synthetic_em.write_synthetic_em(em, synth.SynthConfig((16, 80, 96), VS, "clean", 23))
    img = io.read_image(em, io.read_volume_info(em))
    damaged, flags = degrade.degrade_volume(img, degrade.bench_plan(16), 23)
    io.write_zarr(em / "image.zarr", damaged)
    io.write_zarr(em / "defects.zarr", flags)
    io.write_json(em / "volume.json", {**io.read_volume_info(em), "defects": "defects.zarr"})
    return damaged, flags


@pytest.mark.slow
def test_restorer_run_dir(tmp_path: Path, cluster: ClusterSpec) -> None:
    em = tmp_path / "em"
    damaged, flags = _damaged_em(em)
    weights = _save(tmp_path / "restorer.npz")
    out = tmp_path / "run"
    result = pipeline.reconstruct(em, out, spec=cluster, restorer_path=weights,
                                  block=(16, 64, 64))
    run = io.read_json(out / "run.json", "run")
    assert run["restorer"] == {"path": str(weights.resolve()), "sha256": file_sha256(weights),
                               "image": "restored.zarr", "defects": "restored_defects.zarr",
                               "restored_voxels": int((flags != 0).sum())}
    everything = (slice(None),) * 3
    got = io.read_block(io.open_zarr(out / "restored.zarr"), everything, out)
    assert np.array_equal(got, restore.restore(io.load_restorer(weights), damaged, flags))
    assert not np.array_equal(got, damaged)
    cleared = io.read_block(io.open_zarr(out / "restored_defects.zarr"), everything, out)
    assert np.array_equal(cleared, restore.cleared(flags)) and not cleared.any()
    seg = io.read_block(io.open_zarr(out / "segmentation.zarr"), everything, out)
    # decisions are taken from the restored voxels: flagged voxels hold segments (under the
    # EM directory's flags every one would be segment 0)
    assert (seg[flags != 0] != 0).mean() > 0.05
    assert "nerl" in result["pipeline"]
    with pytest.raises(ReconstructError, match="restorer"):
        pipeline.reconstruct(em, out, spec=cluster, block=(16, 64, 64))


def test_bad_restorer_inputs_are_named(tmp_path: Path) -> None:
    runner = CliRunner()
    em = tmp_path / "em"
    synthetic_em.write_synthetic_em(em, synth.SynthConfig((16, 32, 32), VS, "clean", 1))
    weights = _save(tmp_path / "r.npz")
    r = runner.invoke(app, ["reconstruct", str(em), str(tmp_path / "run"), "--restore",
                            str(weights), "--quiet"])
    assert r.exit_code == 1 and "names no 'defects'" in r.output
    bad = tmp_path / "bad.npz"
    bad.write_text("nope")
    r = runner.invoke(app, ["reconstruct", str(em), str(tmp_path / "run"), "--restore",
                            str(bad), "--quiet"])
    assert r.exit_code == 1 and "restorer" in r.output and "bad.npz" in r.output
    assert not (tmp_path / "run").exists()
    w = str(tmp_path / "w.npz")
    for args, word in ((["--steps", "0"], "--steps"), (["--crop", "4,31,64"], "crop"),
                       (["--lr", "0"], "lr")):
        r = runner.invoke(app, ["train-restorer", str(em), "--out", w, *args])
        assert r.exit_code == 2 and word in r.output, r.output
    r = runner.invoke(app, ["train-restorer", str(em), "--out", w, "--crop", "2,16,16",
                            "--batch", "1", "--steps", "2", "--segmentation-weight", "0"])
    assert r.exit_code == 0, r.output
    assert io.load_restorer(Path(w)).meta["steps"] == 2
    assert len((tmp_path / "w.npz.log.jsonl").read_text().splitlines()) == 2
