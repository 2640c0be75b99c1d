"""Latency of the neuPrint routes beside GraphQL for the same questions, same run, same server.

    uv run python bench/neuprint/run.py                # C. elegans (Cook 2019), 30 reps
    uv run python bench/neuprint/run.py --reps 10      # quicker

Starts a private Neo4j, loads Cook 2019 with the project's loader, then asks each question
through the FastAPI app in-process: once as neuprint-python would (`POST /api/custom/custom`
with its Cypher: label rewrite, EXPLAIN plan check, scope check, the query, JSON rows) and once
as GraphQL (`/graphql`). Both answers are checked to hold the same rows before timing. Prints
p50 of each and the ratio neuPrint / GraphQL; writes JSON with the load average.

Also, for the versions the neuPrint routes rely on: the store's growth for one more version of
the dataset (loaded a second time; files under `data/databases/neo4j` after a checkpoint), and
the time of the pass that prepares a version for them (`graphdb.dataset_scope.prepare_version`:
scope labels, roiInfo, Meta fields) beside the whole load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.common import machine, private_server  # noqa: E402

DATASET = "cook2019"


def questions() -> list[tuple[str, str, str, Any, Any]]:
    """(name, neuPrint Cypher, GraphQL query, rows from neuPrint, rows from GraphQL)."""
    def np_rows(body: dict) -> set:
        return {tuple(r) for r in body["data"]}

    def gql_partners(direction: str) -> Any:
        def rows(body: dict) -> set:
            return {(int(c["partner"]["bodyId"]), c["partner"]["instance"], c["weight"])
                    for c in body["data"]["neuron"][direction]}
        return rows

    def gql_type(body: dict) -> set:
        return {(int(n["bodyId"]), n["instance"], n["pre"], n["post"])
                for n in (e["node"] for e in body["data"]["neurons"]["edges"])}

    return [
        ("neurons of a type",
         "MATCH (n:Neuron) WHERE n.type = 'AVA' RETURN n.bodyId, n.instance, n.pre, n.post",
         f'{{ neurons(dataset: "{DATASET}", type: "AVA") {{ edges {{ node {{ bodyId instance '
         "pre post } } } }", np_rows, gql_type),
        ("downstream partners",
         "MATCH (a:Neuron)-[c:ConnectsTo]->(b:Neuron) WHERE a.instance = 'AVAL' "
         "RETURN b.bodyId, b.instance, c.weight",
         f'{{ neuron(dataset: "{DATASET}", name: "AVAL") {{ downstream(first: 1000) {{ weight '
         "partner { bodyId instance } } } }", np_rows, gql_partners("downstream")),
        ("upstream partners",
         "MATCH (a:Neuron)-[c:ConnectsTo]->(b:Neuron) WHERE b.instance = 'AVAL' "
         "RETURN a.bodyId, a.instance, c.weight",
         f'{{ neuron(dataset: "{DATASET}", name: "AVAL") {{ upstream(first: 1000) {{ weight '
         "partner { bodyId instance } } } }", np_rows, gql_partners("upstream")),
    ]


def _store_bytes(store: Path) -> int:
    """Bytes of the database's files."""
    return sum(f.stat().st_size for f in store.rglob("*") if f.is_file())


def _driver(target: Any) -> Any:
    import neo4j

    return neo4j.GraphDatabase.driver(target.uri, auth=(target.user, target.password),
                                      notifications_min_severity="OFF")


def _compare(http: Any, name: str, cypher: str, query: str, np_rows: Any, gql_rows: Any,
             reps: int) -> dict[str, Any] | None:
    """Both paths' p50 for one question, once their answers agree (None when they differ)."""
    def via_neuprint() -> dict:
        r = http.post("/api/custom/custom", json={"cypher": cypher, "dataset": DATASET})
        r.raise_for_status()
        return dict(r.json())

    def via_graphql() -> dict:
        r = http.post("/graphql", json={"query": query})
        r.raise_for_status()
        body = dict(r.json())
        assert "errors" not in body, body
        return body

    if np_rows(via_neuprint()) != gql_rows(via_graphql()):
        print(f"{name}: the two answers differ", file=sys.stderr)
        return None
    t_np, t_gql = timed(via_neuprint, reps), timed(via_graphql, reps)
    row = {"question": name, "neuprint_p50_ms": statistics.median(t_np) * 1e3,
           "graphql_p50_ms": statistics.median(t_gql) * 1e3, "reps": reps,
           "rows": len(np_rows(via_neuprint()))}
    row["ratio"] = row["neuprint_p50_ms"] / row["graphql_p50_ms"]
    print(f"{name:22s} neuPrint {row['neuprint_p50_ms']:7.1f} ms   GraphQL "
          f"{row['graphql_p50_ms']:7.1f} ms   ratio {row['ratio']:.2f} ({row['rows']} rows)",
          flush=True)
    return row


def timed(call: Any, reps: int) -> list[float]:
    call()
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        call()
        out.append(time.perf_counter() - t)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--heap", default="1g")
    p.add_argument("--pagecache", default="512m")
    p.add_argument("--json", type=Path, default=ROOT / "bench/neuprint/results.json")
    a = p.parse_args()

    from fastapi.testclient import TestClient

    from connectome_query.graphdb import dataset_scope
    from connectome_query.graphql_api.app import create_app
    from connectome_query.graphql_api.auth import AuthConfig
    from connectome_query.ingest.loader import load
    from connectome_query.ingest.sources import read_source

    with private_server(a.heap, a.pagecache) as server:
        target = server.start(timeout=300)
        store = server.home / "data" / "databases" / "neo4j"
        with _driver(target) as drv:
            t = time.perf_counter()
            first = load(drv, read_source(DATASET), DATASET)
            load_s = time.perf_counter() - t
        server.stop()  # the store's files are whole once the server is down
        size_one = _store_bytes(store)
        target = server.start(timeout=300)
        app = create_app(target, auth=AuthConfig(required=False))
        results = []
        with TestClient(app) as http:
            for name, cypher, query, np_rows, gql_rows in questions():
                row = _compare(http, name, cypher, query, np_rows, gql_rows, a.reps)
                if row is None:
                    return 1
                results.append(row)
        with _driver(target) as drv:
            load(drv, read_source(DATASET), DATASET)
            t = time.perf_counter()
            dataset_scope.prepare_version(drv, f"{DATASET}@v{first.version}")
            prepare_s = time.perf_counter() - t
        server.stop()
        size_two = _store_bytes(store)
    versions = {"load_s": load_s, "prepare_s": prepare_s, "store_bytes_one_version": size_one,
                "store_bytes_per_extra_version": size_two - size_one}
    print(f"load {load_s:.1f} s; the neuPrint preparation pass, timed again on its own, "
          f"{prepare_s:.1f} s; store {size_one / 2**20:.1f} MiB with one version, "
          f"+{(size_two - size_one) / 2**20:.1f} MiB for a second", flush=True)
    load1 = os.getloadavg()[0]
    print(f"load average (1 min): {load1:.2f}")
    a.json.write_text(json.dumps({"results": results, "versions": versions,
                                  "loadavg_1m": load1,
                                  "machine": machine()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
