"""Crash trial of the API: kill -9 `connectome serve` while a reload runs and clients read;
restart it; what it serves, before, during and after, must be the dataset whole.

The reload writes the same files again, so every answer (the neuron ids and the matrix export)
must equal the one computed from the generator's graph, whichever version served it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import neo4j

from connectome_query.graphdb.settings import Neo4jTarget
from tests.support.crash import (
    TrialResult,
    connectome_command,
    kill9,
    loss,
    newest_version,
    rows_total,
    start_ingest,
    stderr_of,
    target_env,
    version_status,
    wait_for_load_start,
    wait_for_progress,
)
from tests.support.fingerprint import fingerprint, matches_clean
from tests.support.net import free_port
from tests.support.readback import read_back

Answers = dict[str, Any]


def start_api(target: Neo4jTarget, timeout: float = 120) -> tuple[subprocess.Popen[bytes], str]:
    """`connectome serve` (auth off) in its own session on a free port, once it answers."""
    port = free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed with the process's other files
    proc = subprocess.Popen([*connectome_command(), "serve", "--port", str(port)],
                            env={**target_env(target), "CONNECTOME_AUTH": "off"},
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    kill9(proc)
    log.seek(0)
    raise RuntimeError(f"the API did not come up: {log.read()[-2000:]!r}")


def served(url: str, dataset: str) -> Answers:
    """The dataset as the API serves it: its neuron ids and its chemical matrix."""
    body = httpx.post(f"{url}/graphql", timeout=60, json={
        "query": "query($d: String!) { neurons(dataset: $d, first: 1000) "
                 "{ totalCount edges { node { bodyId } } } }", "variables": {"d": dataset}})
    body.raise_for_status()
    page = body.json()["data"]["neurons"]
    matrix = httpx.get(f"{url}/export/matrix", timeout=60,
                       params={"dataset": dataset, "format": "parquet", "minWeight": 0})
    matrix.raise_for_status()
    return {"ids": {int(e["node"]["bodyId"]) for e in page["edges"]},
            "total": page["totalCount"], "matrix": read_back("parquet", matrix.content)[0]}


class Reader(threading.Thread):
    """Reads `served` in a loop from whichever API `url()` names, until stopped; keeps every
    complete answer (a request cut off by the kill is not an answer)."""

    def __init__(self, url: Callable[[], str], dataset: str) -> None:
        super().__init__(daemon=True)
        self.url, self.dataset = url, dataset
        self.answers: list[Answers] = []
        self.failures = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.answers.append(served(self.url(), self.dataset))
            except (httpx.HTTPError, KeyError, ValueError):
                self.failures += 1
                time.sleep(0.05)


def kill_api_trial(driver: neo4j.Driver, target: Neo4jTarget, source: Path, dataset: str,
                   expected: dict[str, Any], expected_answers: Answers, fraction: float,
                   batch_size: int) -> TrialResult:
    """Serve the dataset, start reloading it, kill -9 the API once `fraction` of the rows are
    written, restart the API; the reload must finish by itself, every answer served before,
    during and after must equal `expected_answers`, and the graph the clean load."""
    api, url = start_api(target)
    urls = [url]
    reader = Reader(lambda: urls[-1], dataset)
    ingest = None
    try:
        result = TrialResult("kill -9 API", fraction, None)
        if served(url, dataset) != expected_answers:
            result.problems.append("the API served something else before the trial")
        before = newest_version(driver, dataset)
        reader.start()
        ingest = start_ingest(source, dataset, target, batch_size)
        key = wait_for_load_start(driver, dataset, before, ingest)
        wait_for_progress(driver, key, fraction, rows_total(expected), ingest)
        kill9(api)
        result.status_after_kill = version_status(driver, key)
        api, url = start_api(target)
        urls.append(url)
        code = ingest.wait(timeout=300)
        if code != 0:
            result.problems.append(f"the reload failed ({code}): {stderr_of(ingest)}")
        stderr_of(ingest)
        answers_after = served(url, dataset)
    finally:
        reader.stop.set()
        reader.join(timeout=120)
        if ingest is not None and ingest.poll() is None:
            os.killpg(ingest.pid, signal.SIGKILL)
        kill9(api)
    wrong = [a for a in reader.answers if a != expected_answers]
    if wrong:
        result.problems.append(f"{len(wrong)} of {len(reader.answers)} answers during the "
                               "reload were not the dataset whole")
    if not reader.answers:
        result.problems.append("no answer was read during the reload")
    if answers_after != expected_answers:
        result.problems.append("after the restart the API serves something else")
    result.found = fingerprint(driver, dataset)
    result.problems += matches_clean(result.found, expected)
    result.lost, result.extra = loss(result.found, expected)
    return result
