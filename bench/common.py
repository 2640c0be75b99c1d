"""Shared by the benchmarks: a private Neo4j, a cached synthetic dataset, a step run in a fresh
interpreter with its peak RSS, an older tree of the repository for a baseline."""

from __future__ import annotations

import json
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from connectome_query.graphdb.local_server import LocalNeo4j
from connectome_query.graphdb.settings import NEO4J_VERSION, LocalServerConfig, cache_dir
from connectome_query.ingest.synth_connectome import synth_connectome

ROOT = Path(__file__).resolve().parents[1]


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


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_step(name: str, code: str, args: list[str], cap_gb: float,
             say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run `code` in a fresh interpreter; its JSON answer, or what stopped it."""
    say(f"{name} (load {os.getloadavg()[0]:.1f})")
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    seen = 0.0
    killed = False
    while proc.poll() is None:
        seen = max(seen, _rss_mb(proc.pid))
        if seen > cap_gb * 1024:
            proc.kill()
            killed = True
        time.sleep(0.2)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t
    if killed:
        out: dict[str, Any] = {"failed": f"RSS passed {cap_gb} GB after {wall:.0f} s",
                               "peak_rss_mb": seen}
    elif proc.returncode != 0:
        out = {"failed": stderr.strip().splitlines()[-1] if stderr.strip() else
               f"exit {proc.returncode}", "peak_rss_mb": seen}
    else:
        out = json.loads(stdout.strip().splitlines()[-1])
    out["load_avg_1m_after"] = round(os.getloadavg()[0], 1)
    say(str(out))
    return out


def old_tree(commit: str, into: Path) -> Path:
    """The repository at `commit`, extracted (no history) into `into`."""
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True,
                             check=True).stdout
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def load_1min() -> float:
    """The 1-minute load average, recorded beside every figure."""
    return os.getloadavg()[0]


def segmentation_quality(net: Any, image: np.ndarray, truth: dict[str, Any],
                         vs: tuple[float, float, float], flags: np.ndarray | None = None
                         ) -> dict[str, Any]:
    """Segment `image` with the watershed on `net`'s affinities and score it against the truth
    (NERL, VOI, synapse counts for a pooled F1); with `flags`, no decision is taken from the
    voxels they mark, as the engine does."""
    from connectome_query.reconstruct import affinity_net, lattice, scoring, segment, synapses
    from connectome_query.reconstruct.align.masks import NO_DECISION, has

    affs, cleft = affinity_net.predict(net, image)
    if flags is None:
        seg = segment.seeded_segmentation(affs, vs)
    else:
        bad = has(flags, NO_DECISION)
        seg = segment.seeded_segmentation(lattice.sever(affs, bad), vs)
        seg[bad] = 0
        cleft = np.where(bad, 0, cleft)
    sc = scoring.segmentation_scores(seg, truth, vs)
    syn = synapses.detect(cleft, seg, image, vs)
    syn["post_compartment"] = "unknown"
    sm = scoring.synapse_metrics(seg, syn, truth)
    return {"nerl": sc["nerl"], "voi": sc["voi"], "voi_split": sc["voi_split"],
            "voi_merge": sc["voi_merge"], "synapse_f1": sm["synapse_f1"],
            "synapses_predicted": sm["synapses_predicted"], "synapses_true": sm["synapses_true"],
            "synapses_matched": sm["synapses_matched"]}


def pooled_f1(rows: list[dict[str, Any]]) -> float:
    """Synapse F1 over several volumes' matches pooled (not the mean of their F1s)."""
    tp = sum(r["synapses_matched"] for r in rows)
    n = sum(r["synapses_predicted"] + r["synapses_true"] for r in rows)
    return 2 * tp / n if n else 0.0


def quality_table(rows: dict[str, list[dict[str, Any]]], title: str
                  ) -> tuple[Table, dict[str, dict[str, float]]]:
    """Per method, the mean NERL and VOI over volumes and the pooled synapse F1: the table and
    the summary the JSON record keeps."""
    tab = Table(title=title)
    for c in ("method", "NERL", "VOI", "VOI split", "VOI merge", "synapse F1 (pooled)"):
        tab.add_column(c, justify="left" if c == "method" else "right")
    summary: dict[str, dict[str, float]] = {}
    for name, rs in rows.items():
        m = {k: float(np.mean([r[k] for r in rs])) for k in ("nerl", "voi", "voi_split",
                                                            "voi_merge")}
        m["synapse_f1_pooled"] = pooled_f1(rs)
        summary[name] = m
        tab.add_row(name, f"{m['nerl']:.3f}", f"{m['voi']:.3f}", f"{m['voi_split']:.3f}",
                    f"{m['voi_merge']:.3f}", f"{m['synapse_f1_pooled']:.3f}")
    return tab, summary
