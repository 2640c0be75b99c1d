"""A small load driver for the API tests: `connectome serve` in a subprocess and closed-loop
clients, each sending one GraphQL read at a time, counting every failed answer; optionally one
client sending heavy requests in a loop and a probe timing `/health`.

The load benchmark has its own, fuller driver; this one only has to show that the served API
answers a burst of concurrent reads without an error, and that a heavy client neither stalls
the event loop nor pushes the small reads' latency up.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from connectome_query.graphdb.settings import Neo4jTarget
from tests.support.net import free_port

READS = (
    """query($d: String!, $n: String!) { neuron(dataset: $d, name: $n) { bodyId type
       upstream(first: 10) { weight partner { instance } }
       downstream(first: 10) { weight partner { instance } } } }""",
    """query($d: String!, $n: String!) { neuron(dataset: $d, name: $n) {
       electricalPartners(first: 20) { weight partner { instance } } } }""",
    """query($d: String!) { neurons(dataset: $d, first: 50) { totalCount
       edges { node { bodyId instance } } } }""",
)


@dataclass(frozen=True)
class Served:
    """A running `connectome serve`: its base URL and process id."""

    url: str
    pid: int

    def rss_mb(self) -> float:
        """The server process's resident memory now, in MiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")


@contextmanager
def served_api(target: Neo4jTarget, env: dict[str, str]) -> Iterator[Served]:
    """`connectome serve` against `target` on a free port."""
    port = free_port()
    full_env = {**os.environ, "NEO4J_URI": target.uri, "NEO4J_USER": target.user,
                "NEO4J_PASSWORD": target.password, **env}
    with tempfile.TemporaryFile() as log:  # a file, not a pipe nobody reads
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "connectome"), "serve", "--port", str(port)],
            env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url, proc, log)
            yield Served(url, proc.pid)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: object,
                  timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the API server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the API server did not come up")


def neuron_names(url: str, dataset: str) -> list[str]:
    """Named neurons of `dataset`, read through the API."""
    query = ('query($d: String!) { neurons(dataset: $d, first: 1000) '
             '{ edges { node { instance } } } }')
    body = httpx.post(f"{url}/graphql", json={"query": query, "variables": {"d": dataset}},
                      timeout=60).json()
    return [e["node"]["instance"] for e in body["data"]["neurons"]["edges"]
            if e["node"]["instance"]]


@dataclass
class LoadResult:
    requests: int = 0
    seconds: float = 0.0
    error_samples: list[str] = field(default_factory=list)
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    """Seconds each small query took."""
    health: list[float] = field(default_factory=list)
    """Seconds each /health probe took."""
    heavy: list[tuple[int, float]] = field(default_factory=list)
    """(status, seconds) of each heavy request."""

    def p99(self) -> float:
        return _quantile(self.latencies, 0.99)

    def line(self) -> str:
        text = (f"{self.requests} requests in {self.seconds:.0f} s "
                f"({self.requests / max(self.seconds, 1e-9):.1f}/s), {self.errors} errors, "
                f"p50 {_quantile(self.latencies, 0.5):.3f} s, p99 {self.p99():.3f} s")
        if self.health:
            text += f"; /health max {max(self.health):.3f} s over {len(self.health)} probes"
        if self.heavy:
            statuses = sorted({status for status, _ in self.heavy})
            text += f"; {len(self.heavy)} heavy requests, statuses {statuses}"
        return text


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


Heavy = tuple[str, str, dict[str, Any]]
"""(method, path, httpx arguments) of a heavy request."""


async def run_load(url: str, dataset: str, names: list[str], *, clients: int,
                   seconds: float, think: float = 0.0, heavy: list[Heavy] | None = None,
                   probe: bool = False) -> LoadResult:
    """`clients` concurrent clients for `seconds`, each pausing about `think` s between small
    reads; with `heavy`, one more client sends those requests in turn, each at least once (the
    others keep going until it has); with `probe`, /health is asked every 100 ms. Any non-200
    answer, GraphQL error or transport failure of a small read is an error."""
    result = LoadResult()
    deadline = time.monotonic() + seconds
    heavy_done = asyncio.Event()
    if not heavy:
        heavy_done.set()

    def running() -> bool:
        return time.monotonic() < deadline or not heavy_done.is_set()

    async def client(seed: int) -> None:
        rng = random.Random(seed)
        async with httpx.AsyncClient(base_url=url, timeout=120) as http:
            while running():
                body = {"query": rng.choice(READS),
                        "variables": {"d": dataset, "n": rng.choice(names)}}
                t0 = time.perf_counter()
                try:
                    response = await http.post("/graphql", json=body)
                    if response.status_code != 200 or "errors" in response.json():
                        result.error_samples.append(f"{response.status_code}: "
                                                    f"{response.text[:200]}")
                except (httpx.HTTPError, ValueError) as exc:
                    result.error_samples.append(f"{type(exc).__name__}: {exc}")
                result.latencies.append(time.perf_counter() - t0)
                result.requests += 1
                if think:
                    await asyncio.sleep(rng.uniform(0.5 * think, 1.5 * think))

    async def heavy_client(requests: list[Heavy]) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=300) as http:
            i = 0
            try:
                while i < len(requests) or time.monotonic() < deadline:
                    method, path, kwargs = requests[i % len(requests)]
                    i += 1
                    t0 = time.perf_counter()
                    response = await http.request(method, path, **kwargs)
                    result.heavy.append((response.status_code, time.perf_counter() - t0))
            finally:
                heavy_done.set()

    async def health_probe() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            while running():
                t0 = time.perf_counter()
                await http.get("/health")
                result.health.append(time.perf_counter() - t0)
                await asyncio.sleep(0.1)

    extra = ([heavy_client(heavy)] if heavy else []) + ([health_probe()] if probe else [])
    t0 = time.monotonic()
    await asyncio.gather(*(client(i) for i in range(clients)), *extra)
    result.seconds = time.monotonic() - t0
    result.errors = len(result.error_samples)
    return result
