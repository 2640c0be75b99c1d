"""Load test: 50 concurrent clients for 60 s against `connectome serve` on loopback.

    uv run python bench/load/run.py                  # own Neo4j in a temp dir, cook2019 loaded
    uv run python bench/load/run.py --clients 50 --seconds 60 --auth

Uses NEO4J_URI when set (the dataset must be loaded there), else starts a LocalNeo4j on a free
port in a temp dir and loads the dataset with `connectome ingest`. The baseline is the same
clients against `/health` (the HTTP stack alone, no database), in the same run. Prints one line
per phase and a JSON summary; exits non-zero if any request failed.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.common import free_port
from bench.load.loadgen import api_server, run_load
from connectome_query.graphdb.local_server import LocalNeo4j
from connectome_query.graphdb.settings import (
    LocalServerConfig,
    Neo4jTarget,
    cache_dir,
    external_target,
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--baseline-seconds", type=float, default=10)
    ap.add_argument("--dataset", default="cook2019")
    ap.add_argument("--auth", action="store_true",
                    help="CONNECTOME_AUTH=required; clients send a token (rate limit off)")
    ap.add_argument("--json", type=Path, help="also write the summary here")
    args = ap.parse_args()

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
        return _run(args, target, Path(tmp.name), load=server is not None)
    finally:
        if server is not None:
            server.stop()
        tmp.cleanup()


def _run(args: argparse.Namespace, target: Neo4jTarget, tmp: Path, load: bool) -> int:
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
        out = subprocess.run([exe, "tokens", "create", "load", "-d", args.dataset, "--file",
                              str(tokens)], env=env, check=True, capture_output=True, text=True)
        headers = {"Authorization": f"Bearer {out.stdout.strip().splitlines()[-1]}"}
        server_env = {"CONNECTOME_AUTH": "required", "CONNECTOME_TOKENS_FILE": str(tokens),
                      "CONNECTOME_RATE_LIMIT": "0"}
    summary = {}
    with api_server(target, env=server_env) as url:
        if args.baseline_seconds > 0:
            base = asyncio.run(run_load(url, args.dataset, clients=args.clients,
                                        seconds=args.baseline_seconds, path="/health",
                                        headers=headers))
            print(f"baseline /health:  {base.line()}")
            summary["baseline_health"] = base.as_dict()
        result = asyncio.run(run_load(url, args.dataset, clients=args.clients,
                                      seconds=args.seconds, headers=headers))
        print(f"GraphQL mix:       {result.line()}")
        summary["graphql"] = result.as_dict()
        if args.baseline_seconds > 0:
            print(f"p50 ratio GraphQL/health: {result.p50_ms / max(base.p50_ms, 1e-9):.1f}x")
    summary["auth"] = args.auth
    text = json.dumps(summary, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 1 if summary["graphql"]["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
