"""Resumable and fault tolerant: a killed command finishes what is missing when run again, a lost
worker's blocks are redone by Dask, and a run directory of other inputs is refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from connectome_query.reconstruct import pipeline
from connectome_query.reconstruct.engine.cluster import ClusterSpec
from connectome_query.reconstruct.errors import ReconstructError
from tests.support.reconstruct import read_volume, write_em

KEY = ["synapse_id", "pre_segment_id", "post_segment_id", "x", "y", "z", "size_voxels",
       "confidence"]


def _same_result(run: Path, reference: Path) -> None:
    np.testing.assert_array_equal(read_volume(run / "segmentation.zarr"),
                                  read_volume(reference / "segmentation.zarr"))
    a, b = (pd.read_parquet(d / "synapses.parquet") for d in (run, reference))
    pd.testing.assert_frame_equal(a[KEY], b[KEY])


def _records(run: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in (run / "engine").glob("*/*.npz")}


@pytest.mark.slow
def test_kill_9_of_the_command_then_the_same_command_finishes(
        tmp_path: Path, clean_dir: Path, clean_run: tuple[Path, Any]) -> None:
    """`connectome reconstruct` killed with SIGKILL in the middle of the segmentation (its own
    LocalCluster goes with it); run again, it redoes no finished block and gives the answer
    of an uninterrupted run."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-c", "from connectome_query.cli.main import app; app()",
           "reconstruct", str(clean_dir),
           str(out), "--block", "16,32,32", "--workers", "2", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not list((out / "engine" / "growth").glob("*.npz")):
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "segments.parquet").exists()
    before = _records(out)
    assert before and not list((out / "engine" / "relabel").glob("*.npz"))
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    after = _records(out)
    assert all(after[p] == t for p, t in before.items())  # finished blocks were not redone
    assert len(after) > len(before)
    _same_result(out, clean_run[0])


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_replaced_without_a_wrong_answer(
        tmp_path: Path, clean_dir: Path, clean_run: tuple[Path, Any],
        cluster: ClusterSpec) -> None:
    """SIGKILL to a worker process while the network's blocks run: Dask reruns its tasks
    elsewhere (the nanny starts a new worker) and the answer is unchanged."""
    from distributed import Client

    out = tmp_path / "run"
    errors: list[BaseException] = []

    def run() -> None:
        try:
            pipeline.reconstruct(clean_dir, out, block=(16, 32, 32), spec=cluster)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    folder = out / "engine" / "affinities (network)"
    deadline = time.time() + 600
    while not list(folder.glob("*.npz")):
        assert thread.is_alive() and time.time() < deadline
        time.sleep(0.05)
    with Client(cluster.scheduler) as client:
        pids = list(client.run(os.getpid).values())
    os.kill(pids[0], signal.SIGKILL)
    thread.join(900)
    assert not errors, errors
    _same_result(out, clean_run[0])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    affs = rng.random((3, 8, 32, 32)).astype(np.float32)
    return write_em(tmp / "em", rng.integers(0, 255, (8, 32, 32)).astype(np.uint8),
                    affs)  # type: ignore[return-value]


def test_a_run_directory_of_other_inputs_is_refused(tmp_path: Path, tiny: tuple[Path, Path],
                                                    cluster: ClusterSpec) -> None:
    em, affs = tiny
    out = tmp_path / "run"
    pipeline.reconstruct(em, out, affinities_path=affs, block=(8, 16, 16), spec=cluster)
    # the same inputs again: nothing to redo, nothing refused
    before = _records(out)
    pipeline.reconstruct(em, out, affinities_path=affs, block=(8, 16, 16), spec=cluster)
    assert _records(out) == before
    with pytest.raises(ReconstructError, match=r"other parameters.*block_zyx"):
        pipeline.reconstruct(em, out, affinities_path=affs, block=(4, 16, 16), spec=cluster)
    other, _ = write_em(tmp_path / "other", np.full((8, 32, 32), 7, np.uint8))
    with pytest.raises(ReconstructError, match=r"another volume.*volume\.image"):
        pipeline.reconstruct(other, out, affinities_path=affs, block=(8, 16, 16),
                             spec=cluster)
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("something else")
    with pytest.raises(ReconstructError, match="not empty"):
        pipeline.reconstruct(em, tmp_path / "used", affinities_path=affs, spec=cluster)


def test_a_damaged_block_record_is_named(tmp_path: Path, tiny: tuple[Path, Path],
                                         cluster: ClusterSpec) -> None:
    em, affs = tiny
    out = tmp_path / "run"
    pipeline.reconstruct(em, out, affinities_path=affs, block=(8, 16, 16), spec=cluster)
    bad = out / "engine" / "seeds" / "0.npz"
    bad.write_bytes(b"not a record")
    with pytest.raises(ReconstructError, match=r"seeds/0\.npz is damaged"):
        pipeline.reconstruct(em, out, affinities_path=affs, block=(8, 16, 16), spec=cluster)


def test_the_network_is_known_by_its_weights_not_its_path(tmp_path: Path,
                                                          tiny: tuple[Path, Path],
                                                          cluster: ClusterSpec) -> None:
    """The same weights from another place (another install or checkout) resume the run;
    other weights are refused, naming the network's hash."""
    import shutil

    from connectome_query.reconstruct.training import DEFAULT_NET, LEAN_NET

    em, _ = tiny
    out = tmp_path / "run"
    pipeline.reconstruct(em, out, net_path=DEFAULT_NET, block=(8, 16, 16), spec=cluster)
    before = _records(out)
    copy = shutil.copy(DEFAULT_NET, tmp_path / "elsewhere.npz")
    pipeline.reconstruct(em, out, net_path=Path(copy), block=(8, 16, 16), spec=cluster)
    assert _records(out) == before
    with pytest.raises(ReconstructError, match=r"other parameters.*network\.sha256"):
        pipeline.reconstruct(em, out, net_path=LEAN_NET, block=(8, 16, 16), spec=cluster)


def test_an_atomic_file_appears_whole_or_not_at_all(tmp_path: Path) -> None:
    """A record written in full is there with its bytes; one whose writing fails leaves
    neither it nor its temporary, and a record already there is kept."""
    from connectome_query.reconstruct.engine.manifest import atomic_file

    path = tmp_path / "engine" / "flat_field.npy"
    want = np.arange(12.0).reshape(3, 4)
    with atomic_file(path) as fh:
        np.save(fh, want)
    np.testing.assert_array_equal(np.load(path), want)
    with pytest.raises(RuntimeError, match="stopped"), atomic_file(path) as fh:
        fh.write(b"half a reco")
        raise RuntimeError("stopped")
    np.testing.assert_array_equal(np.load(path), want)
    assert sorted(p.name for p in path.parent.iterdir()) == ["flat_field.npy"]
