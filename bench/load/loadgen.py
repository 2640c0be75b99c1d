"""Closed-loop HTTP load against a real uvicorn server: N clients, each one request at a time.

A mix of GraphQL reads (dataset list, neuron by name with partners, a page of neurons, a
downstream threshold query) on one dataset; each client may pause (`think`) between requests.
Beside them, optionally: one heavy client sending the most expensive requests the API allows, in
a loop (`heavy_requests`: a Cypher answer just under its byte cap, a GraphQL query just under
its cost cap, a whole-dataset matrix export, or Cypher that runs until its timeout), and a probe
asking `/health` every 100 ms, whose slowest answer shows whether the event loop ever stalled.
Every non-200 answer, GraphQL `errors`, timeout or connection failure counts as an error. Used
by `bench/load/run.py` (and the same shapes by the load test).
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
from contextlib import contextmanager, suppress
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
    health: dict[str, float] | None = None
    """The /health probe: requests, p50/p99/max in ms, answers slower than 1 s."""
    heavy: dict[str, Any] | None = None
    """The heavy client: requests and errors per kind, slowest answer."""

    def line(self) -> str:
        text = (f"clients={self.clients} seconds={self.seconds:.0f} requests={self.requests} "
                f"errors={self.errors} rps={self.rps:.1f} p50={self.p50_ms:.1f}ms "
                f"p90={self.p90_ms:.1f}ms p99={self.p99_ms:.1f}ms max={self.max_ms:.1f}ms")
        if self.health:
            h = self.health
            text += (f" | /health probe p50={h['p50_ms']:.1f}ms p99={h['p99_ms']:.1f}ms "
                     f"max={h['max_ms']:.1f}ms over1s={h['over_1s']:.0f}")
        if self.heavy:
            kinds = ", ".join(
                f"{kind} {v['statuses']} slowest {v['max_s']:.1f}s"
                for kind, v in self.heavy["kinds"].items())
            text += f" | heavy {self.heavy['requests']} ({kinds}), {self.heavy['errors']} errors"
        return text

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _percentiles(latencies: list[float]) -> dict[str, float]:
    ms = np.array(latencies) * 1000 if latencies else np.zeros(1)
    return {"requests": float(len(latencies)), "p50_ms": float(np.percentile(ms, 50)),
            "p90_ms": float(np.percentile(ms, 90)), "p99_ms": float(np.percentile(ms, 99)),
            "max_ms": float(ms.max()), "over_1s": float((ms > 1000).sum())}


def heavy_requests(dataset: str, kinds: list[str], *, cypher_bytes: int = 15_000_000,
                   graphql_first: int = 30) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(kind, method, path, httpx arguments) of the most expensive requests the API allows:
    `cypher-bytes` (an answer just under CONNECTOME_CYPHER_MAX_BYTES, under the row cap),
    `graphql-cost` (every neuron with `graphql_first` upstream partners: just under
    CONNECTOME_GRAPHQL_MAX_COST at 300 neurons), `export` (the whole chemical matrix),
    `cypher-cpu` (a scan that runs until CONNECTOME_CYPHER_TIMEOUT_S ends it)."""
    rows = 95_000
    pad = "x" * max(1, cypher_bytes // rows - 12)
    catalog: dict[str, tuple[str, str, dict[str, Any]]] = {
        "cypher-bytes": ("POST", "/api/custom/custom", {"json": {
            "cypher": f"UNWIND range(1, {rows}) AS i RETURN i, '{pad}' AS pad"}}),
        "graphql-cost": ("POST", "/graphql", {"json": {"query": f"""query($d: String!) {{
            neurons(dataset: $d, first: 300) {{ edges {{ node {{ bodyId instance type
            upstream(first: {graphql_first}) {{ weight partner {{ instance type }} }}
            }} }} }} }}""", "variables": {"d": dataset}}}),
        "export": ("GET", "/export/matrix", {"params": {"dataset": dataset,
                                                        "format": "parquet"}}),
        "cypher-cpu": ("POST", "/api/custom/custom", {"json": {
            "cypher": "UNWIND range(1, 2000000000) AS x WITH x WHERE x % 7 = 99999999 "
                      "RETURN count(x)"}}),
    }
    return [(k, *catalog[k]) for k in kinds]


async def _heavy(url: str, deadline: float, requests: list[tuple[str, str, str, dict[str, Any]]],
                 headers: dict[str, str] | None, out: dict[str, Any]) -> None:
    """Send `requests` in turn until `deadline`. An answer is a 200 or a 4xx naming the limit it
    hit (the CPU-bound Cypher ends in its timeout; on a busy machine a large answer may too);
    a 5xx, GraphQL `errors` on a 200 or no answer is an error."""
    async with httpx.AsyncClient(base_url=url, timeout=300, headers=headers) as client:
        i = 0
        while time.monotonic() < deadline:
            kind, method, path, kwargs = requests[i % len(requests)]
            i += 1
            t0 = time.perf_counter()
            try:
                response = await client.request(method, path, **kwargs)
                status = response.status_code
                ok = status < 500 and not (
                    status == 200 and path == "/graphql" and "errors" in response.json())
                size = len(response.content)
            except (httpx.HTTPError, ValueError):
                status, ok, size = 0, False, 0
            took = time.perf_counter() - t0
            entry = out.setdefault(kind, {"requests": 0, "errors": 0, "max_s": 0.0,
                                          "bytes": 0, "statuses": {}})
            entry["requests"] += 1
            entry["errors"] += not ok
            entry["max_s"] = max(entry["max_s"], took)
            entry["bytes"] = max(entry["bytes"], size)
            entry["statuses"][str(status)] = entry["statuses"].get(str(status), 0) + 1


async def _probe(url: str, deadline: float, latencies: list[float]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            with suppress(httpx.HTTPError):
                await client.get("/health")
            latencies.append(time.perf_counter() - t0)
            await asyncio.sleep(0.1)


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
                  headers: dict[str, str] | None, path: str, timeout: float,
                  think: float = 0.0) -> None:
    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, headers=headers) as client:
        if think:  # spread the clients' first requests over one pause
            await asyncio.sleep(rng.uniform(0, think))
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
            if think:
                await asyncio.sleep(rng.uniform(0.5 * think, 1.5 * think))


async def run_load(url: str, dataset: str, *, clients: int, seconds: float,
                   headers: dict[str, str] | None = None, path: str = "/graphql",
                   names: list[str] | None = None, timeout: float = 120.0, think: float = 0.0,
                   heavy: list[tuple[str, str, str, dict[str, Any]]] | None = None,
                   probe: bool = False) -> LoadResult:
    """`clients` concurrent closed-loop clients for `seconds` (pausing about `think` seconds
    between requests), plus one client looping over `heavy` and a /health probe if asked;
    latency percentiles in ms. A request unanswered within `timeout` seconds is an error."""
    names = names if names is not None else (
        neuron_names(url, dataset, headers) if path != "/health" else [])
    latencies: list[float] = []
    errors: list[str] = []
    health: list[float] = []
    heavy_out: dict[str, Any] = {}
    t0 = time.monotonic()
    deadline = t0 + seconds
    extra = []
    if heavy:
        extra.append(_heavy(url, deadline, heavy, headers, heavy_out))
    if probe:
        extra.append(_probe(url, deadline, health))
    await asyncio.gather(*(
        _client(url, dataset, names, deadline, i, latencies, errors, headers, path, timeout,
                think) for i in range(clients)), *extra)
    elapsed = time.monotonic() - t0
    stats = _percentiles(latencies)
    heavy_summary = None
    if heavy:
        heavy_summary = {"requests": sum(v["requests"] for v in heavy_out.values()),
                         "errors": sum(v["errors"] for v in heavy_out.values()),
                         "kinds": heavy_out}
    return LoadResult(
        clients=clients, seconds=elapsed, requests=len(latencies), errors=len(errors),
        rps=len(latencies) / elapsed, p50_ms=stats["p50_ms"], p90_ms=stats["p90_ms"],
        p99_ms=stats["p99_ms"], max_ms=stats["max_ms"], error_samples=errors[:5],
        health=_percentiles(health) if probe else None, heavy=heavy_summary,
    )
