"""Crash trials: kill -9 the ingest process, or Neo4j itself, mid-load; rerun; compare.

Each trial returns a `TrialResult`; `lost` counts edges or nodes of the clean load missing
afterwards, `extra` counts duplicates or leftovers.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import neo4j

from connectome_query.graphdb.local_server import LocalNeo4j, process_gone
from connectome_query.graphdb.settings import Neo4jTarget
from tests.support.fingerprint import fingerprint, matches_clean
from tests.support.net import free_port


def connectome_command() -> list[str]:
    """The installed `connectome` entry point (what `uv run connectome` runs)."""
    exe = Path(sys.executable).parent / "connectome"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "connectome_query.cli"]


def target_env(target: Neo4jTarget) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"NEO4J_URI": target.uri, "NEO4J_USER": target.user,
                "NEO4J_PASSWORD": target.password})
    return env


def start_ingest(source: Path, dataset: str, target: Neo4jTarget,
                 batch_size: int) -> subprocess.Popen[bytes]:
    """`connectome ingest` in its own session; its stderr goes to a temp file (a full pipe
    could stall it), read back with `stderr_of`."""
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stderr_of
    proc = subprocess.Popen(
        [*connectome_command(), "ingest", str(source), "--dataset", dataset,
         "--batch-size", str(batch_size)],
        env=target_env(target), stdout=subprocess.DEVNULL, stderr=log,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )
    _LOGS[proc.pid] = log
    return proc


_LOGS: dict[int, Any] = {}


def stderr_of(proc: subprocess.Popen[bytes]) -> str:
    log = _LOGS.pop(proc.pid, None)
    if log is None:
        return ""
    log.seek(0)
    text = log.read().decode(errors="replace")
    log.close()
    return text[-3000:]


def run_ingest(source: Path, dataset: str, target: Neo4jTarget, batch_size: int,
               timeout: float = 300) -> tuple[int, str, float]:
    """Run an ingest to the end: (exit code, stderr tail, seconds)."""
    t0 = time.monotonic()
    proc = start_ingest(source, dataset, target, batch_size)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return proc.returncode, stderr_of(proc), time.monotonic() - t0


def newest_version(driver: neo4j.Driver, dataset: str) -> tuple[str, str] | None:
    """(key, status) of the newest version of `dataset`, finished or not."""
    records, _, _ = driver.execute_query(
        "MATCH (m:Meta) WHERE coalesce(m.name, m.dataset) = $d "
        "RETURN m.dataset AS key, m.status AS status ORDER BY coalesce(m.version, 1) DESC "
        "LIMIT 1", d=dataset)
    return (records[0]["key"], records[0]["status"]) if records else None


def wait_for_load_start(driver: neo4j.Driver, dataset: str, before: tuple[str, str] | None,
                        proc: subprocess.Popen[bytes], timeout: float = 180) -> str:
    """Block until the ingest opens a new version (its writes begin); that version's key."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        newest = newest_version(driver, dataset)
        if newest is not None and newest != before and newest[1] == "loading":
            return newest[0]
        time.sleep(0.05)
    raise RuntimeError(f"the ingest never started writing (exit {proc.poll()})")


def rows_written(driver: neo4j.Driver, key: str) -> int:
    """Neurons plus ConnectsTo/GapJunction relationships written into version `key`."""
    records, _, _ = driver.execute_query(
        """MATCH (n:Neuron {dataset: $d})
           WITH count(n) AS neurons
           OPTIONAL MATCH (:Neuron {dataset: $d})-[r:ConnectsTo|GapJunction]->()
           WITH neurons, count(r) AS rels
           RETURN neurons + rels""", d=key)
    return int(records[0][0])


def wait_for_progress(driver: neo4j.Driver, key: str, fraction: float, total: int,
                      proc: subprocess.Popen[bytes], timeout: float = 300) -> None:
    """Block until `fraction` of the load's `total` rows are in version `key` (or the ingest
    exits).

    Aiming at progress instead of time keeps kills mid-load however slow the machine is;
    fractions near 1 land in the last batches or the switch to the new version.
    """
    target = int(fraction * total)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if rows_written(driver, key) >= target:
            return
        time.sleep(0.02)


def version_status(driver: neo4j.Driver, key: str) -> str | None:
    records, _, _ = driver.execute_query("MATCH (m:Meta {dataset: $d}) RETURN m.status", d=key)
    return records[0][0] if records else None


def timed_clean_ingest(driver: neo4j.Driver, target: Neo4jTarget, source: Path, dataset: str,
                       batch_size: int, timeout: float = 300) -> tuple[float, float]:
    """Run one ingest to the end: (total seconds, seconds from its first write until Meta
    says 'complete', the window in which a kill lands mid-load)."""
    t0 = time.monotonic()
    before = newest_version(driver, dataset)
    proc = start_ingest(source, dataset, target, batch_size)
    key = wait_for_load_start(driver, dataset, before, proc)
    started = time.monotonic()
    done = None
    while proc.poll() is None and done is None:
        if version_status(driver, key) == "complete":
            done = time.monotonic()
        time.sleep(0.05)
    proc.wait(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"clean ingest failed: {stderr_of(proc)}")
    stderr_of(proc)
    end = time.monotonic()
    return end - t0, (done or end) - started


def kill9(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process (its own session: nothing else is touched) and reap it."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@dataclass
class TrialResult:
    kind: str
    kill_at_fraction: float
    """Share of the load's rows written when the kill was aimed."""
    status_after_kill: str | None
    """The killed load's version status right after the kill: 'loading' means mid-load."""
    problems: list[str] = field(default_factory=list)
    found: dict[str, Any] = field(default_factory=dict)
    lost: int = 0
    extra: int = 0
    ingest_exit: int | None = None
    """Neo4j trials: the ingest's own exit code (None: still retrying, so it was killed)."""
    ingest_message_clear: bool | None = None
    """Neo4j trials: whether the ingest said to rerun (no traceback)."""

    @property
    def ok(self) -> bool:
        return not self.problems


def rows_total(expected: dict[str, Any]) -> int:
    return int(expected["neurons"] + expected["ConnectsTo"] + expected["GapJunction"])


def loss(found: dict[str, Any], expected: dict[str, Any]) -> tuple[int, int]:
    lost = sum(max(0, expected[k] - found[k]) for k in ("neurons", "ConnectsTo", "GapJunction"))
    extra = sum(max(0, found[k] - expected[k]) for k in ("neurons", "ConnectsTo", "GapJunction"))
    extra += max(0, found["nodes"] - expected["neurons"])
    return lost, extra


def _rerun_and_compare(result: TrialResult, driver: neo4j.Driver, target: Neo4jTarget,
                       source: Path, dataset: str, expected: dict[str, Any],
                       batch_size: int) -> None:
    """Rerun the ingest to the end and record how the graph differs from a clean load."""
    code, err, _ = run_ingest(source, dataset, target, batch_size)
    if code != 0:
        result.problems.append(f"rerun failed ({code}): {err}")
    result.found = fingerprint(driver, dataset)
    result.problems += matches_clean(result.found, expected)
    result.lost, result.extra = loss(result.found, expected)


def kill_ingest_trial(driver: neo4j.Driver, target: Neo4jTarget, source: Path, dataset: str,
                      expected: dict[str, Any], fraction: float,
                      batch_size: int) -> TrialResult:
    """Start an ingest, SIGKILL it once `fraction` of its rows are written, rerun, compare."""
    before = newest_version(driver, dataset)
    proc = start_ingest(source, dataset, target, batch_size)
    key = wait_for_load_start(driver, dataset, before, proc)
    wait_for_progress(driver, key, fraction, rows_total(expected), proc)
    kill9(proc)
    result = TrialResult("kill -9 ingest", fraction, version_status(driver, key))
    _rerun_and_compare(result, driver, target, source, dataset, expected, batch_size)
    return result


def kill_neo4j_trial(server: LocalNeo4j, source: Path, dataset: str, expected: dict[str, Any],
                     fraction: float, batch_size: int) -> tuple[TrialResult, LocalNeo4j]:
    """Start an ingest, SIGKILL the Neo4j server once `fraction` of the rows are written,
    restart the server on
    the same files (crash recovery), rerun the ingest, compare. Returns the restarted server.

    The restart takes a new free port: while the old one is unbound, a connecting client may
    grab it (TCP self-connect on an ephemeral port), which would make the restart flaky.
    """
    target = server.target()
    with neo4j.GraphDatabase.driver(target.uri, auth=(target.user, target.password)) as drv:
        before = newest_version(drv, dataset)
        proc = start_ingest(source, dataset, target, batch_size)
        key = wait_for_load_start(drv, dataset, before, proc)
        wait_for_progress(drv, key, fraction, rows_total(expected), proc)
    pid = server.pid()
    assert pid is not None, "the trial server is not running"
    os.kill(pid, signal.SIGKILL)
    while not process_gone(pid):
        time.sleep(0.05)
    # The ingest sees the connection drop; give it time to fail, then make sure it is gone.
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=45)
    exited_itself = proc.poll()
    kill9(proc)
    ingest_said = stderr_of(proc)
    server = LocalNeo4j(replace(server.config, bolt_port=free_port()))
    target = server.start(timeout=240)
    with neo4j.GraphDatabase.driver(target.uri, auth=(target.user, target.password)) as drv:
        result = TrialResult("kill -9 neo4j", fraction, version_status(drv, key))
        result.ingest_exit = exited_itself
        result.ingest_message_clear = "rerun the same command" in ingest_said
        _rerun_and_compare(result, drv, target, source, dataset, expected, batch_size)
    return result, server



def kill_points(rng: random.Random, n: int, start: float, end: float) -> list[float]:
    """`n` kill times spread over [start, end]: one per stratum, random within it."""
    width = (end - start) / n
    return [start + width * (i + rng.random()) for i in range(n)]
