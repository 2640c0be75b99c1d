"""Shared fixtures: small synthetic volumes, one reconstruction run per preset, and the Dask
cluster the runs share (two worker processes, as a LocalCluster on a 2-core machine has)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectome_query.reconstruct import affinity_net, io, pipeline, synth, synthetic_em, training
from connectome_query.reconstruct.engine.cluster import ClusterSpec, worker_env

FLOOR_SEEDS = (2, 3, 4)  # with seed 1 (clean_run): the clean quality-floor volumes


@pytest.fixture(scope="session")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained on synthetic seeds never used for evaluation."""
    p = tmp_path_factory.mktemp("model") / "model.joblib"
    io.save_model(p, training.default_model((40.0, 16.0, 16.0), seed=0))
    return p


def _em(tmp: Path, preset: str, seed: int) -> Path:
    d = tmp / f"em_{preset}_{seed}"
    synthetic_em.write_synthetic_em(
        d, synth.SynthConfig((64, 64, 64), (40.0, 16.0, 16.0), preset, seed))
    return d


@pytest.fixture(scope="session")
def clean_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _em(tmp_path_factory.mktemp("clean"), "clean", 1)


@pytest.fixture(scope="session")
def noisy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _em(tmp_path_factory.mktemp("noisy"), "noisy", 1)


@pytest.fixture(scope="session")
def cluster() -> Iterator[ClusterSpec]:
    """A LocalCluster of two single-threaded worker processes that the test runs share
    (so that each does not start its own and import its libraries again)."""
    from distributed import LocalCluster

    lc = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0", silence_logs=40, env=worker_env(1))
    try:
        yield ClusterSpec(scheduler=lc.scheduler_address)
    finally:
        with contextlib.suppress(TimeoutError):  # a worker slow to exit on a busy machine
            lc.close(timeout=60)


def _run(tmp_path_factory: pytest.TempPathFactory, em_dir: Path,
         cluster: ClusterSpec) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp(f"run_{em_dir.name}") / "run"
    return out, pipeline.reconstruct(em_dir, out, spec=cluster)


@pytest.fixture(scope="session")
def clean_run(tmp_path_factory: pytest.TempPathFactory, clean_dir: Path,
              cluster: ClusterSpec) -> tuple[Path, dict[str, Any]]:
    """The clean volume reconstructed as shipped (one block: the default for 64^3)."""
    return _run(tmp_path_factory, clean_dir, cluster)


@pytest.fixture(scope="session")
def clean_floor_runs(tmp_path_factory: pytest.TempPathFactory,
                     clean_run: tuple[Path, dict[str, Any]],
                     cluster: ClusterSpec) -> list[dict[str, Any]]:
    """Metrics of the clean quality-floor volumes: `clean_run` (seed 1) and seeds
    `FLOOR_SEEDS`. One 64^3 volume's NERL swings by +-0.3 with a single merge, so the
    floor is judged on several."""
    tmp = tmp_path_factory.mktemp("floor")
    runs = [clean_run[1]]
    for seed in FLOOR_SEEDS:
        runs.append(pipeline.reconstruct(_em(tmp, "clean", seed), tmp / f"run{seed}",
                                         spec=cluster))
    return runs


@pytest.fixture(scope="session")
def noisy_run(tmp_path_factory: pytest.TempPathFactory, noisy_dir: Path,
              cluster: ClusterSpec) -> tuple[Path, dict[str, Any]]:
    return _run(tmp_path_factory, noisy_dir, cluster)


@pytest.fixture(scope="session")
def shipped() -> affinity_net.AffinityNet:
    """The affinity network shipped with the package."""
    return io.load_net(training.DEFAULT_NET)


@pytest.fixture(scope="session")
def small_volume() -> synth.Slab:
    """A small clean volume (24 x 48 x 40 voxels) in memory."""
    return synth.synthesize(synth.SynthConfig((24, 48, 40), (40.0, 16.0, 16.0), "clean", 11))
