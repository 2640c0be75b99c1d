"""Load test: 50 concurrent clients for 60 s against `connectome serve` on loopback, without and
with one client sending the most expensive requests the API allows, in a loop.

    uv run python bench/load/run.py                  # own Neo4j in a temp dir, cook2019 loaded
    uv run python bench/load/run.py --clients 50 --seconds 60 --think 0.5
    uv run python bench/load/run.py --heavy cypher-bytes,graphql-cost,export,cypher-cpu

Uses NEO4J_URI when set (the dataset must be loaded there), else starts a LocalNeo4j on a free
port in a temp dir and loads the dataset with `connectome ingest`. Phases, in one run: the
baseline (the same clients against `/health`: the HTTP stack alone), the GraphQL mix, and the
mix with one of the clients replaced by the heavy one (`--heavy`; see `loadgen.heavy_requests`).
During both mixes a probe asks `/health` every 100 ms: its slowest answer is the longest the
event loop was held. `--think` makes each client pause about that long between requests (0:
saturation). Prints one line per phase and a JSON summary with the load average before and
after; exits non-zero if any request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.common import free_port
from bench.load.loadgen import api_server, heavy_requests, neuron_names, run_load
from connectome_query.graphdb.local_server import LocalNeo4j
from connectome_query.graphdb.settings import (
    LocalServerConfig,
    Neo4jTarget,
    cache_dir,
    external_target,
)

HEAVY_KINDS = ("cypher-bytes", "graphql-cost", "export", "cypher-cpu")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--baseline-seconds", type=float, default=10)
    ap.add_argument("--think", type=float, default=0.0,
                    help="seconds each client pauses between requests (0: saturation)")
    ap.add_argument("--heavy", default="cypher-bytes,graphql-cost,export",
                    help=f"heavy requests, in turn (of {', '.join(HEAVY_KINDS)}); '' skips "
                         "the heavy phase")
    ap.add_argument("--dataset", default="cook2019")
    ap.add_argument("--auth", action="store_true",
                    help="CONNECTOME_AUTH=required; clients send a token (rate limit off)")
    ap.add_argument("--json", type=Path, help="also write the summary here")
    args = ap.parse_args()
    kinds = [k for k in args.heavy.split(",") if k]
    if set(kinds) - set(HEAVY_KINDS):
        ap.error(f"--heavy: unknown {sorted(set(kinds) - set(HEAVY_KINDS))}")

    tmp = tempfile.TemporaryDirectory(prefix="connectome-load-")
    server: LocalNeo4j | None = None
    target = external_target()
    if target is None:
        server = LocalNeo4j(LocalServerConfig(home=Path(tmp.name) / "neo4j", cache=cache_dir(),
                                              bolt_port=free_port(), heap="1g",
                                              pagecache="512m"))
        print("starting a Neo4j for the run...", file=sys.stderr)
        target = server.start(timeout=300)
    try:
        return _run(args, kinds, target, Path(tmp.name), load=server is not None)
    finally:
        if server is not None:
            server.stop()
        tmp.cleanup()


def _run(args: argparse.Namespace, kinds: list[str], target: Neo4jTarget, tmp: Path,
         load: bool) -> int:
    exe = str(Path(sys.executable).parent / "connectome")
    env = dict(os.environ, NEO4J_URI=target.uri, NEO4J_USER=target.user,
               NEO4J_PASSWORD=target.password)
    if load:
        subprocess.run([exe, "ingest", args.dataset, "--dataset", args.dataset], env=env,
                       check=True, stdout=subprocess.DEVNULL)
    server_env: dict[str, str] = {}
    headers = None
    if args.auth:
        tokens = tmp / "tokens.json"
        out = subprocess.run([exe, "tokens", "create", "load", "-d", "*", "--file",
                              str(tokens)], env=env, check=True, capture_output=True, text=True)
        headers = {"Authorization": f"Bearer {out.stdout.strip().splitlines()[-1]}"}
        server_env = {"CONNECTOME_AUTH": "required", "CONNECTOME_TOKENS_FILE": str(tokens),
                      "CONNECTOME_RATE_LIMIT": "0"}
    summary: dict[str, Any] = {"load_average_before": os.getloadavg(), "think_s": args.think,
                               "clients": args.clients, "heavy_kinds": kinds}
    with api_server(target, env=server_env) as url:
        names = neuron_names(url, args.dataset, headers)
        if args.baseline_seconds > 0:
            base = asyncio.run(run_load(url, args.dataset, clients=args.clients,
                                        seconds=args.baseline_seconds, path="/health",
                                        headers=headers, think=args.think))
            print(f"baseline /health:  {base.line()}")
            summary["baseline_health"] = base.as_dict()
        mix = asyncio.run(run_load(url, args.dataset, clients=args.clients, seconds=args.seconds,
                                   headers=headers, names=names, think=args.think, probe=True))
        print(f"GraphQL mix:       {mix.line()}")
        summary["graphql"] = mix.as_dict()
        if kinds:
            heavy = asyncio.run(run_load(
                url, args.dataset, clients=args.clients - 1, seconds=args.seconds,
                headers=headers, names=names, think=args.think, probe=True,
                heavy=heavy_requests(args.dataset, kinds)))
            print(f"mix + heavy:       {heavy.line()}")
            summary["graphql_with_heavy"] = heavy.as_dict()
            print(f"p99 ratio with/without the heavy client: "
                  f"{heavy.p99_ms / max(mix.p99_ms, 1e-9):.2f}x")
        if args.baseline_seconds > 0:
            print(f"p50 ratio GraphQL/health: {mix.p50_ms / max(base.p50_ms, 1e-9):.1f}x")
    summary["auth"] = args.auth
    summary["load_average_after"] = os.getloadavg()
    text = json.dumps(summary, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text)
    failed = summary["graphql"]["errors"] or (
        kinds and (summary["graphql_with_heavy"]["errors"]
                   or summary["graphql_with_heavy"]["heavy"]["errors"]))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
