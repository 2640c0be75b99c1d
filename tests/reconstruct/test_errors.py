"""Bad input: a clear message naming the file or field, and a non-zero exit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from connectome_query.cli.main import app as connectome_app
from connectome_query.reconstruct import io


@pytest.fixture()
def app() -> typer.Typer:
    return connectome_app


def _run(app: typer.Typer, *args: str) -> tuple[int, str]:
    r = CliRunner().invoke(app, ["reconstruct", *args, "--quiet"])
    return r.exit_code, " ".join(r.output.split())


def _copy(src: Path, tmp: Path) -> Path:
    d = tmp / "em"
    shutil.copytree(src, d)
    return d


def test_missing_volume(app: typer.Typer, tmp_path: Path) -> None:
    code, out = _run(app, str(tmp_path / "nope"), str(tmp_path / "run"))
    assert code != 0 and "does not exist" in out


def test_missing_image(app: typer.Typer, clean_dir: Path, tmp_path: Path) -> None:
    d = _copy(clean_dir, tmp_path)
    shutil.rmtree(d / "image.zarr")
    code, out = _run(app, str(d), str(tmp_path / "run"))
    assert code != 0 and "image.zarr" in out


def test_wrong_dtype(app: typer.Typer, clean_dir: Path, tmp_path: Path) -> None:
    d = _copy(clean_dir, tmp_path)
    io.write_zarr(d / "image.zarr", np.zeros((64, 64, 64), np.float32))
    code, out = _run(app, str(d), str(tmp_path / "run"))
    assert code != 0 and "dtype" in out and "image.zarr" in out


def test_wrong_shape(app: typer.Typer, clean_dir: Path, tmp_path: Path) -> None:
    d = _copy(clean_dir, tmp_path)
    io.write_zarr(d / "image.zarr", np.zeros((60, 64, 64), np.uint8))
    code, out = _run(app, str(d), str(tmp_path / "run"))
    assert code != 0 and "shape_zyx" in out


def test_bad_volume_json_field(app: typer.Typer, clean_dir: Path, tmp_path: Path) -> None:
    d = _copy(clean_dir, tmp_path)
    info = json.loads((d / "volume.json").read_text())
    info["voxel_size_nm"] = [16, 16]
    (d / "volume.json").write_text(json.dumps(info))
    code, out = _run(app, str(d), str(tmp_path / "run"))
    assert code != 0 and "voxel_size_nm" in out


def test_non_matching_truth(app: typer.Typer, clean_dir: Path, tmp_path: Path) -> None:
    d = _copy(clean_dir, tmp_path)
    io.write_zarr(d / "truth" / "segmentation.zarr", np.zeros((64, 64, 32), np.uint64))
    code, out = _run(app, str(d), str(tmp_path / "run"))
    assert code != 0 and "ground truth" in out and "does not match" in out


def test_corrupt_chunk(app: typer.Typer, clean_dir: Path, tmp_path: Path) -> None:
    d = _copy(clean_dir, tmp_path)
    chunks = [p for p in (d / "image.zarr").rglob("*") if p.is_file() and p.name != "zarr.json"]
    assert chunks
    chunks[0].write_bytes(b"this is not zstd data")
    code, out = _run(app, str(d), str(tmp_path / "run"))
    assert code != 0 and "corrupt" in out and "image.zarr" in out


def test_bad_affinities(app: typer.Typer, clean_dir: Path, tmp_path: Path,
                        model_path: Path) -> None:
    bad = tmp_path / "affs.zarr"
    io.write_zarr(bad, np.zeros((2, 64, 64, 64), np.float32))
    code, out = _run(app, str(clean_dir), str(tmp_path / "run"), "--model", str(model_path),
                     "--affinities", str(bad))
    assert code != 0 and "affinities" in out and "affs.zarr" in out


def test_bad_model(app: typer.Typer, clean_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "model.joblib"
    bad.write_text("nope")
    code, out = _run(app, str(clean_dir), str(tmp_path / "run"), "--model", str(bad))
    assert code != 0 and "model" in out


def test_voxel_size_the_network_was_not_trained_at(app: typer.Typer, clean_dir: Path,
                                                     tmp_path: Path) -> None:
    d = _copy(clean_dir, tmp_path)
    info = json.loads((d / "volume.json").read_text())
    info["voxel_size_nm"] = [8, 8, 30]
    (d / "volume.json").write_text(json.dumps(info))
    code, out = _run(app, str(d), str(tmp_path / "run"))
    assert code != 0 and "voxel_size_nm" in out and "[8.0, 8.0, 30.0]" in out
    assert not (tmp_path / "run" / "run.json").exists()


def test_network_without_voxel_size(app: typer.Typer, clean_dir: Path,
                                    tmp_path: Path) -> None:
    from connectome_query.reconstruct import affinity_net, training

    net = io.load_net(training.DEFAULT_NET)
    del net.meta[affinity_net.VOXEL_SIZE_KEY]
    io.save_net(tmp_path / "old.npz", net)
    code, out = _run(app, str(clean_dir), str(tmp_path / "run"), "--net",
                     str(tmp_path / "old.npz"))
    assert code != 0 and "old.npz" in out and "voxel size" in out
