"""Shared by the ingest and partner benchmarks: a private Neo4j, a cached synthetic dataset."""

from __future__ import annotations

import os
import platform
import resource
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from connectome_query.graphdb.local_server import LocalNeo4j
from connectome_query.graphdb.settings import NEO4J_VERSION, LocalServerConfig, cache_dir
from connectome_query.ingest.synth_connectome import synth_connectome


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def private_server(heap: str, pagecache: str, home: Path | None = None) -> Iterator[LocalNeo4j]:
    """A fresh Neo4j of our own (temp home, free port), stopped on exit; not started yet."""
    with tempfile.TemporaryDirectory(prefix="bench-neo4j-") as tmp:
        config = LocalServerConfig(home=home or Path(tmp), cache=cache_dir(),
                                   bolt_port=free_port(), heap=heap, pagecache=pagecache,
                                   tx_timeout="600s")
        server = LocalNeo4j(config)
        try:
            yield server
        finally:
            server.stop()


def synth_dataset(neurons: int, edges: int, seed: int, synapses: int | None = None,
                  id_range: str = "js") -> tuple[Path, float]:
    """The generator's files, cached by size, seed and id range; returns (folder, seconds to
    generate)."""
    name = f"synth-{neurons}-{edges}-{synapses or 0}-{seed}"
    if id_range != "js":
        name += f"-{id_range}"
    folder = cache_dir() / "bench" / name
    if (folder / "synth.json").exists():
        return folder, 0.0
    t = time.perf_counter()
    synth_connectome(folder, neurons=neurons, edges=edges, synapses=synapses, seed=seed,
                     id_range=id_range)
    return folder, time.perf_counter() - t


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> dict[str, str]:
    """nproc, RAM, CPU model, Python, Neo4j: the header of BENCHMARKS.md."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"nproc": str(os.cpu_count()), "ram_gib": f"{mem:.1f}", "cpu": cpu,
            "python": platform.python_version(), "neo4j": NEO4J_VERSION,
            "load_avg_1m": f"{os.getloadavg()[0]:.1f}"}


def ratio(ours: float, base: float) -> str:
    return f"{ours / base:.1f}x" if base > 0 else "n/a"
