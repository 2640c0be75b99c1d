"""Closed-loop HTTP load against a real uvicorn server: N clients, each one request at a time.

A mix of GraphQL reads (dataset list, neuron by name with partners, a page of neurons, a
downstream threshold query) on one dataset. Every non-200 answer, GraphQL `errors`, timeout or
connection failure counts as an error. Used by `bench/load/run.py`.
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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.common import free_port
from connectome_query.graphdb.settings import Neo4jTarget


@contextmanager
def api_server(target: Neo4jTarget, *, env: dict[str, str] | None = None,
               port: int | None = None, timeout: float = 120) -> Iterator[str]:
    """`connectome serve` in a subprocess against `target`; yields its base URL."""
    port = port or free_port()
    exe = Path(sys.executable).parent / "connectome"
    full_env = dict(os.environ)
    full_env.update({"NEO4J_URI": target.uri, "NEO4J_USER": target.user,
                     "NEO4J_PASSWORD": target.password, **(env or {})})
    # The server logs every request: its output goes to a file, since an unread pipe fills up
    # and then blocks the server.
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
    proc = subprocess.Popen([str(exe), "serve", "--port", str(port)], env=full_env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                log.seek(0)
                err = log.read().decode(errors="replace")
                raise RuntimeError(f"the API server exited: {err[-2000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the API server did not come up")
            time.sleep(0.2)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


NEURON = """query($d: String!, $n: String!) { neuron(dataset: $d, name: $n) {
  bodyId instance type pre post
  upstream(first: 10) { weight partner { instance type } }
  downstream(first: 10) { weight partner { instance } } } }"""
PAGE = """query($d: String!, $after: String) { neurons(dataset: $d, first: 50, after: $after) {
  totalCount edges { node { bodyId instance type } } pageInfo { endCursor hasNextPage } } }"""
STRONG = """query($d: String!, $n: String!, $w: Int!) { neuron(dataset: $d, name: $n) {
  downstream(minWeight: $w, first: 100) { weight partner { instance } }
  electricalPartners(first: 20) { weight partner { instance } } } }"""
DATASETS = "{ datasets { name neuronCount chemicalSynapses } }"


@dataclass
class LoadResult:
    clients: int
    seconds: float
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    error_samples: list[str]

    def line(self) -> str:
        return (f"clients={self.clients} seconds={self.seconds:.0f} requests={self.requests} "
                f"errors={self.errors} rps={self.rps:.1f} p50={self.p50_ms:.1f}ms "
                f"p90={self.p90_ms:.1f}ms p99={self.p99_ms:.1f}ms max={self.max_ms:.1f}ms")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def neuron_names(url: str, dataset: str, headers: dict[str, str] | None = None) -> list[str]:
    """Named neurons of `dataset`, read through the API itself."""
    q = """query($d: String!) { neurons(dataset: $d, first: 1000) {
        edges { node { instance } } } }"""
    body = httpx.post(f"{url}/graphql", json={"query": q, "variables": {"d": dataset}},
                      headers=headers, timeout=60).json()
    if "errors" in body:
        raise RuntimeError(f"cannot list neurons of {dataset}: {body['errors']}")
    return [e["node"]["instance"] for e in body["data"]["neurons"]["edges"]
            if e["node"]["instance"]]


def _request(rng: random.Random, dataset: str, names: list[str]) -> dict[str, Any]:
    roll = rng.random()
    if roll < 0.45:
        return {"query": NEURON, "variables": {"d": dataset, "n": rng.choice(names)}}
    if roll < 0.7:
        return {"query": STRONG, "variables": {"d": dataset, "n": rng.choice(names),
                                               "w": rng.randint(1, 10)}}
    if roll < 0.9:
        return {"query": PAGE, "variables": {"d": dataset, "after": None}}
    return {"query": DATASETS}


async def _client(url: str, dataset: str, names: list[str], deadline: float, seed: int,
                  latencies: list[float], errors: list[str],
                  headers: dict[str, str] | None, path: str, timeout: float) -> None:
    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, headers=headers) as client:
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            try:
                if path == "/health":
                    response = await client.get(path)
                    ok = response.status_code == 200
                else:
                    response = await client.post(path, json=_request(rng, dataset, names))
                    ok = response.status_code == 200 and "errors" not in response.json()
                if not ok:
                    errors.append(f"{response.status_code}: {response.text[:200]}")
            except (httpx.HTTPError, ValueError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
            latencies.append(time.perf_counter() - t0)


async def run_load(url: str, dataset: str, *, clients: int, seconds: float,
                   headers: dict[str, str] | None = None, path: str = "/graphql",
                   names: list[str] | None = None, timeout: float = 120.0) -> LoadResult:
    """`clients` concurrent closed-loop clients for `seconds`; latency percentiles in ms.

    A request that gets no answer within `timeout` seconds counts as an error.
    """
    names = names if names is not None else (
        neuron_names(url, dataset, headers) if path != "/health" else [])
    latencies: list[float] = []
    errors: list[str] = []
    t0 = time.monotonic()
    deadline = t0 + seconds
    await asyncio.gather(*(
        _client(url, dataset, names, deadline, i, latencies, errors, headers, path, timeout)
        for i in range(clients)))
    elapsed = time.monotonic() - t0
    ms = np.array(latencies) * 1000 if latencies else np.zeros(1)
    return LoadResult(
        clients=clients, seconds=elapsed, requests=len(latencies), errors=len(errors),
        rps=len(latencies) / elapsed, p50_ms=float(np.percentile(ms, 50)),
        p90_ms=float(np.percentile(ms, 90)), p99_ms=float(np.percentile(ms, 99)),
        max_ms=float(ms.max()), error_samples=errors[:5],
    )
