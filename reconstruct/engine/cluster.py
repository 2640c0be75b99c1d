"""Where the blocks run: a Dask cluster, found or started (we run on Dask, not a scheduler of ours).

With a scheduler address (`--scheduler`, or `DASK_SCHEDULER_ADDRESS`) the run submits to that
cluster (dask-jobqueue on SLURM/PBS/LSF, dask-kubernetes, a `dask scheduler` by hand) and leaves it
running. Without one it starts a `LocalCluster` sized to the machine (worker processes, one thread
each, the memory shared out) and closes it at the end; where a CUDA device exists and `dask-cuda`
is installed, a `LocalCUDACluster` (one worker per GPU) instead. Each local worker is told how many
threads its numeric libraries may use, so that workers do not oversubscribe the cores.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from connectome_query.graphdb.settings import DaskSettings, from_env
from connectome_query.reconstruct.errors import ReconstructError


@dataclass(frozen=True)
class ClusterSpec:
    """How to find or size the cluster; None fields come from the environment or the machine."""

    scheduler: str | None = None  # address of a running scheduler
    workers: int | None = None  # local worker processes
    threads: int | None = None  # threads per local worker
    worker_memory: str | None = None  # memory limit per local worker, e.g. "1.5GB"
    processes: bool = True  # False: local workers are threads of this process (quick tests)


def _cuda_devices() -> int:
    """CUDA devices usable here (0 without CuPy or a GPU)."""
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:
        return 0


def memory_bytes(text: str) -> int:
    """'1.5GB' -> bytes (Dask's parser)."""
    from dask.utils import parse_bytes

    return int(parse_bytes(text))


def worker_env(threads: int) -> dict[str, str]:
    """Thread limits for the numeric libraries of a worker with `threads` threads."""
    t = str(threads)
    return {"NUMBA_NUM_THREADS": t, "OMP_NUM_THREADS": t, "MKL_NUM_THREADS": t,
            "OPENBLAS_NUM_THREADS": t,
            "XLA_FLAGS": f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'} "
                         f"intra_op_parallelism_threads={t}"}


def local_shape(spec: ClusterSpec) -> tuple[int, int, int]:
    """(workers, threads per worker, memory limit bytes per worker) of a local cluster."""
    import psutil

    env = from_env(DaskSettings)
    cores = os.cpu_count() or 1
    threads = spec.threads or env.connectome_dask_threads
    workers = spec.workers or env.connectome_dask_workers or max(cores // threads, 1)
    text = spec.worker_memory or env.connectome_dask_worker_memory
    if text:
        try:
            memory = memory_bytes(text)
        except ValueError as e:
            raise ReconstructError(f"worker memory {text!r} is not a size: {e}") from e
    else:
        memory = int(psutil.virtual_memory().total * 0.8 / workers)
    return workers, threads, memory


@contextmanager
def connect(spec: ClusterSpec, note: object = None) -> Iterator[Any]:
    """A `distributed.Client` on the cluster `spec` names (started here when local, closed on
    exit). `note(text)`, when given, is told the dashboard's address."""
    from distributed import Client, LocalCluster

    address = spec.scheduler or from_env(DaskSettings).dask_scheduler_address
    if address:
        try:
            client = Client(address, timeout="10s")
        except (OSError, TimeoutError) as e:
            raise ReconstructError(f"cannot reach the Dask scheduler at {address}: {e}") from e
        try:
            if callable(note):
                note(f"Dask cluster at {address}, dashboard {client.dashboard_link}")
            yield client
        finally:
            client.close()
        return
    workers, threads, memory = local_shape(spec)
    gpus = _cuda_devices() if spec.processes else 0
    cluster: object
    if gpus:
        try:
            from dask_cuda import LocalCUDACluster

            cluster = LocalCUDACluster(threads_per_worker=threads, memory_limit=memory,
                                       dashboard_address=":0", silence_logs=40)
        except ImportError:
            gpus = 0
    if not gpus:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=threads,
                               memory_limit=memory, processes=spec.processes,
                               dashboard_address=":0", silence_logs=40,
                               **({"env": worker_env(threads)} if spec.processes else {}))
    client = Client(cluster)
    try:
        if callable(note):
            kind = f"{gpus} GPU worker(s)" if gpus else \
                f"{workers} worker(s) x {threads} thread(s), {memory / 2**30:.1f} GiB each"
            note(f"local Dask cluster: {kind}; dashboard {client.dashboard_link}")
        yield client
    finally:
        client.close()
        # the results are on disk by now; a worker slow to exit on a busy machine (the nanny
        # kills it) must not turn a finished run into a failed one
        with suppress(TimeoutError):
            cluster.close(timeout=60)  # type: ignore[attr-defined]
