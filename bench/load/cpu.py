"""CPU time the API process spends per request: the GraphQL mix of the load test, one request
at a time, against `connectome serve` on loopback; baseline: `/health` (the HTTP stack and one
Neo4j round trip) in the same run. CPU time moves far less with the machine's load than
latency does, so it compares two versions of the code run back to back on a shared machine.

    NEO4J_URI=... uv run python bench/load/cpu.py --requests 300 --repeats 3

Needs a server with the dataset loaded (NEO4J_URI, NEO4J_USER, NEO4J_PASSWORD). Prints API CPU
ms per request for each repeat, the medians and their ratio, and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.common import free_port
from bench.load.loadgen import _request, neuron_names


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def per_request(client: httpx.Client, pid: int, requests: list[dict[str, Any]] | None,
                n: int) -> float:
    """API CPU ms per request over `n` requests (GraphQL bodies, or `/health` when None)."""
    before = cpu_seconds(pid)
    for i in range(n):
        if requests is None:
            response = client.get("/health")
        else:
            response = client.post("/graphql", json=requests[i % len(requests)])
        if response.status_code != 200 or (requests is not None and "errors" in response.json()):
            raise RuntimeError(f"request failed: {response.text[:300]}")
    return 1000 * (cpu_seconds(pid) - before) / n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dataset", default="cook2019")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not os.environ.get("NEO4J_URI"):
        ap.error("set NEO4J_URI (and NEO4J_USER, NEO4J_PASSWORD) to a server with the dataset")
    port = free_port()
    exe = Path(sys.executable).parent / "connectome"
    proc = subprocess.Popen([str(exe), "serve", "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        names = neuron_names(url, args.dataset)
        rng = random.Random(1)
        bodies = [_request(rng, args.dataset, names) for _ in range(args.requests)]
        with httpx.Client(base_url=url, timeout=120) as client:
            per_request(client, proc.pid, bodies, 50)  # warm: plans, caches, connections
            graphql, health = [], []
            for _ in range(args.repeats):
                graphql.append(per_request(client, proc.pid, bodies, args.requests))
                health.append(per_request(client, proc.pid, None, args.requests))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    summary = {"graphql_cpu_ms": graphql, "health_cpu_ms": health,
               "graphql_median_ms": statistics.median(graphql),
               "health_median_ms": statistics.median(health),
               "load_average": os.getloadavg()}
    print(f"API CPU per request: GraphQL mix {summary['graphql_median_ms']:.1f} ms "
          f"({', '.join(f'{x:.1f}' for x in graphql)}), /health {summary['health_median_ms']:.1f}"
          f" ms; ratio {summary['graphql_median_ms'] / summary['health_median_ms']:.1f}x; "
          f"load {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
