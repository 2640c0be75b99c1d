"""Where the blocks run: an existing scheduler (option or DASK_SCHEDULER_ADDRESS), or a
LocalCluster sized from the machine and the settings; clear errors otherwise."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from connectome_query.cli.main import app
from connectome_query.graphdb.settings import SettingsError
from connectome_query.reconstruct import pipeline
from connectome_query.reconstruct.engine import cluster as cl
from tests.support.reconstruct import write_em


class Notes:
    def __init__(self) -> None:
        self.notes: list[str] = []

    def stage(self, name: str, total: int, done: int = 0) -> None:
        return None

    def advance(self, name: str, n: int = 1) -> None:
        return None

    def note(self, text: str) -> None:
        self.notes.append(text)


def test_local_cluster_shape_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONNECTOME_DASK_WORKERS", raising=False)
    workers, threads, memory = cl.local_shape(cl.ClusterSpec())
    assert workers == os.cpu_count() and threads == 1 and memory > 2**29
    monkeypatch.setenv("CONNECTOME_DASK_WORKER_MEMORY", "1.5GB")
    monkeypatch.setenv("CONNECTOME_DASK_WORKERS", "3")
    assert cl.local_shape(cl.ClusterSpec()) == (3, 1, 1_500_000_000)
    assert cl.local_shape(cl.ClusterSpec(workers=2, worker_memory="2GiB"))[::2] == (2, 2**31)
    monkeypatch.setenv("CONNECTOME_DASK_WORKER_MEMORY", "lots")
    with pytest.raises(SettingsError, match="CONNECTOME_DASK_WORKER_MEMORY"):
        cl.local_shape(cl.ClusterSpec())


def test_scheduler_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        cluster: cl.ClusterSpec) -> None:
    rng = np.random.default_rng(1)
    em, affs = write_em(tmp_path / "em", rng.integers(0, 255, (8, 32, 32)).astype(np.uint8),
                        rng.random((3, 8, 32, 32)).astype(np.float32))
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", str(cluster.scheduler))
    notes = Notes()
    pipeline.reconstruct(em, tmp_path / "run", affinities_path=affs, progress=notes)
    assert any(f"Dask cluster at {cluster.scheduler}" in n and "dashboard" in n
               for n in notes.notes)
    assert (tmp_path / "run" / "segments.parquet").exists()


def test_unreachable_scheduler_is_a_clear_error(tmp_path: Path, clean_dir: Path) -> None:
    r = CliRunner().invoke(app, ["reconstruct", str(clean_dir), str(tmp_path / "run"),
                                 "--scheduler", "tcp://127.0.0.1:9", "--quiet"])
    assert r.exit_code == 1
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in " ".join(r.output.split())


@pytest.mark.parametrize("block", ["1,2", "0,4,4", "a,b,c"])
def test_bad_block_option(tmp_path: Path, clean_dir: Path, block: str) -> None:
    r = CliRunner().invoke(app, ["reconstruct", str(clean_dir), str(tmp_path / "run"),
                                 "--block", block, "--quiet"])
    assert r.exit_code == 2 and "--block" in r.output


def test_default_block_follows_worker_memory() -> None:
    assert pipeline.default_block((256, 1024, 1024), int(1.5e9)) == (64, 256, 256)
    assert pipeline.default_block((256, 1024, 1024), 16 * 2**30) == (128, 512, 512)
    assert pipeline.default_block((20, 64, 64), 16 * 2**30) == (20, 64, 64)


@pytest.mark.gpu
def test_gpu_workers_run_the_network_on_the_device(tmp_path: Path, clean_dir: Path,
                                                   clean_run: tuple[Path, Any]) -> None:
    """Where a CUDA device exists: one worker per GPU (LocalCUDACluster when dask-cuda is
    installed), JAX on the device, nearly the CPU run's segmentation (float sums differ)."""
    if cl._cuda_devices() == 0:
        pytest.skip("needs a CUDA device")
    import jax

    from connectome_query.reconstruct import metrics
    from tests.support.reconstruct import read_volume

    assert jax.default_backend() == "gpu"
    notes = Notes()
    pipeline.reconstruct(clean_dir, tmp_path / "run", progress=notes)
    assert any("GPU worker" in n for n in notes.notes)
    split, merge = metrics.voi(read_volume(clean_run[0] / "segmentation.zarr"),
                               read_volume(tmp_path / "run" / "segmentation.zarr"))
    assert split + merge < 0.01
