"""Partner-query latency: GraphQL (FastAPI + Strawberry + DataLoader) vs the same Cypher raw.

    uv run python bench/partners/run.py                                 # 139k neurons, 3.7M edges
    uv run python bench/partners/run.py --neurons 20000 --edges 300000  # a quick look

In one run: the synthetic FlyWire-size connectome (cached, as bench/ingest builds it) goes into
a fresh private Neo4j with the offline importer (`ingest.bulk_import`); then for `--requests`
neurons drawn uniformly (seeded), each request asks
`neuron(dataset, bodyId) { upstream(first: 20) {...} downstream(first: 20) {...} }` through the
in-process ASGI app, and the same Cypher statements the resolvers send (dataset names, neuron by
id, upstream batch, downstream batch, in that order, through `graphql_api.db.read` on the async
driver) are sent raw. The two alternate request by request, so both see the same load. Prints
p50/p99 of each and the ratio, plus the PROFILE of the partner query on the busiest neuron.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httpx
import neo4j
import numpy as np
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from bench.common import machine, private_server, ratio, synth_dataset
from connectome_query.graphdb import catalog
from connectome_query.graphdb.driver import open_async_driver
from connectome_query.graphql_api import cypher
from connectome_query.graphql_api.app import create_app
from connectome_query.graphql_api.auth import AuthConfig
from connectome_query.graphql_api.db import read
from connectome_query.ingest.bulk_import import offline_import
from connectome_query.ingest.sources import read_source

console = Console()

QUERY = """query($d: String!, $id: BodyId!, $first: Int!) {
  neuron(dataset: $d, bodyId: $id) {
    bodyId type
    upstream(first: $first) { weight partner { bodyId type instance } }
    downstream(first: $first) { weight partner { bodyId type instance } }
  }
}"""


def project_all_first(pattern: str) -> str:
    """The API's partner query before it adopted top-k-first (kept here as a baseline): a
    property map for every partner, then keep `first`; a hub with thousands of inputs builds
    thousands of maps for 20 rows."""
    return f"""
UNWIND $keys AS k
MATCH (n:Neuron {{dataset: $dataset, bodyId: k.bodyId}})
CALL (n, k) {{
  MATCH {pattern} WHERE c.weight >= k.minWeight
  WITH DISTINCT p, c ORDER BY c.weight DESC, p.bodyId
  WITH k, collect({{weight: c.weight, partner: p {{{cypher.PARTNER_FIELDS}}}}}) AS ranked
  RETURN ranked[0..k.first] AS rows
}}
RETURN k.key AS key, rows
"""


UPSTREAM_ALL = project_all_first("(p:Neuron)-[c:ConnectsTo]->(n)")
DOWNSTREAM_ALL = project_all_first("(n)-[c:ConnectsTo]->(p:Neuron)")


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


async def measure(target: Any, ids: list[int], first: int, warmup: int) -> dict[str, list[float]]:
    app = create_app(target, auth=AuthConfig())
    times: dict[str, list[float]] = {"graphql": [], "raw": [], "raw_project_all": [], "floor": []}
    drv = open_async_driver(target)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:

        async def gql(body_id: int) -> None:
            r = await client.post("/graphql", json={"query": QUERY, "variables": {
                "d": "bench", "id": str(body_id), "first": first}})
            doc = r.json()
            if r.status_code != 200 or doc.get("errors") or not doc["data"]["neuron"]:
                raise RuntimeError(f"GraphQL failed for {body_id}: {r.status_code} {doc}")

        async def raw_with(up: str, down: str, body_id: int) -> list[Any]:
            found = await read(drv, catalog.RESOLVE, {"name": "bench", "version": None})
            key = found[0]["key"]
            rows = await read(drv, cypher.NEURON_BY_ID, {"dataset": key, "bodyId": body_id})
            assert rows
            keys = [{"key": 0, "bodyId": body_id, "minWeight": 1, "first": first}]
            a = await read(drv, up, {"dataset": key, "keys": keys})
            b = await read(drv, down, {"dataset": key, "keys": keys})
            return [a, b]

        async def raw(body_id: int) -> None:
            await raw_with(cypher.UPSTREAM_BATCH, cypher.DOWNSTREAM_BATCH, body_id)

        async def raw_project_all(body_id: int) -> None:
            await raw_with(UPSTREAM_ALL, DOWNSTREAM_ALL, body_id)

        async def floor(_: int) -> None:
            """The same four round trips doing no work: the machine's latency floor."""
            for _i in range(4):
                await read(drv, "RETURN 1 AS one", {})

        for body_id in ids[:5]:  # the former query must answer exactly the same
            now = await raw_with(cypher.UPSTREAM_BATCH, cypher.DOWNSTREAM_BATCH, body_id)
            former = await raw_with(UPSTREAM_ALL, DOWNSTREAM_ALL, body_id)
            for side, a, b in zip(("upstream", "downstream"), now, former, strict=True):
                # the former query returns no row at all for a neuron without partners
                ra, rb = (a[0]["rows"] if a else []), (b[0]["rows"] if b else [])
                diff = next((i for i, (x, y) in enumerate(zip(ra, rb, strict=False))
                             if x != y), None)
                assert len(ra) == len(rb) and diff is None, (
                    f"project-all {side} partners differ for {body_id}: {len(ra)} vs {len(rb)} "
                    f"rows; first difference at {diff}: "
                    f"{'' if diff is None else (ra[diff], rb[diff])}")
        paths = [("graphql", gql), ("raw", raw), ("raw_project_all", raw_project_all),
                 ("floor", floor)]
        for i, body_id in enumerate(ids):
            order = paths[i % 4:] + paths[:i % 4]
            for name, fn in order:
                t = time.perf_counter()
                await fn(body_id)
                if i >= warmup:
                    times[name].append((time.perf_counter() - t) * 1000)
    await drv.close()
    return times


def profile(target: Any, body_id: int, first: int,
            query: str = cypher.UPSTREAM_BATCH) -> dict[str, Any]:
    """PROFILE of the upstream partner query on one neuron: db hits, rows, operators."""
    with neo4j.GraphDatabase.driver(target.uri, auth=(target.user, target.password),
                                    notifications_min_severity="OFF") as drv, drv.session() as s:
        keys = [{"key": 0, "bodyId": body_id, "minWeight": 1, "first": first}]
        summary = s.run("PROFILE " + query, dataset=catalog.resolve(drv, "bench").key,
                        keys=keys).consume()
    plan = summary.profile or {}
    ops: list[str] = []
    hits = 0

    def walk(node: dict[str, Any]) -> None:
        nonlocal hits
        ops.append(node.get("operatorType", "?"))
        hits += int(node.get("dbHits", 0))
        for child in node.get("children", []):
            walk(child)

    walk(plan)
    return {"db_hits": hits, "operators": ops}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--neurons", type=int, default=139_000)
    p.add_argument("--edges", type=int, default=3_700_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--requests", type=int, default=400)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--first", type=int, default=20)
    p.add_argument("--heap", default="2g")
    p.add_argument("--pagecache", default="2g")
    p.add_argument("--json", type=Path, default=Path("bench/partners/results.json"))
    a = p.parse_args()
    res: dict[str, Any] = {"machine": machine(), "neurons": a.neurons, "edges": a.edges,
                           "heap": a.heap, "pagecache": a.pagecache, "first": a.first}
    folder, _ = synth_dataset(a.neurons, a.edges, a.seed)
    conns = pq.read_table(folder / "connections.parquet",
                          columns=["bodyId_pre", "bodyId_post"]).to_pandas()
    neurons = pq.read_table(folder / "neurons.parquet", columns=["bodyId"]).to_pandas()
    rng = np.random.default_rng(a.seed)
    ids = [int(x) for x in rng.choice(neurons["bodyId"].to_numpy(), size=a.requests + a.warmup)]
    hub = int(conns["bodyId_post"].value_counts().index[0])
    with private_server(a.heap, a.pagecache) as server:
        rep, timings = offline_import(server, read_source(str(folder)), "bench", heap=a.heap)
        res["import_s"] = timings.total
        console.print(f"imported {rep.chemical_connections:,} connections in "
                      f"{timings.total:.0f} s")
        target = server.target()
        times = asyncio.run(measure(target, ids, a.first, a.warmup))
        res["profile_hub"] = {"bodyId": hub, "in_degree": int((conns["bodyId_post"] == hub).sum()),
                              **profile(target, hub, a.first)}
        res["profile_hub_project_all"] = profile(target, hub, a.first, UPSTREAM_ALL)
    for name, vals in times.items():
        res[name] = {"p50_ms": pct(vals, 50), "p99_ms": pct(vals, 99),
                     "mean_ms": float(np.mean(vals)), "n": len(vals)}
    table = Table(title=f"partner query (upstream + downstream, first {a.first}), "
                        f"{a.requests} neurons")
    for col in ("path", "p50 ms", "p99 ms", "baseline", "p50 ratio", "p99 ratio"):
        table.add_column(col)
    g, r = res["graphql"], res["raw"]
    table.add_row("GraphQL (ASGI in-process)", f"{g['p50_ms']:.1f}", f"{g['p99_ms']:.1f}",
                  "raw Cypher, same statements", ratio(g["p50_ms"], r["p50_ms"]),
                  ratio(g["p99_ms"], r["p99_ms"]))
    table.add_row("raw Cypher (async driver)", f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}", "",
                  "", "")
    k = res["raw_project_all"]
    table.add_row("raw, former query (project all, then slice)", f"{k['p50_ms']:.1f}",
                  f"{k['p99_ms']:.1f}", "raw Cypher", ratio(k["p50_ms"], r["p50_ms"]),
                  ratio(k["p99_ms"], r["p99_ms"]))
    f = res["floor"]
    table.add_row("floor: 4 x RETURN 1", f"{f['p50_ms']:.1f}", f"{f['p99_ms']:.1f}",
                  "raw Cypher", ratio(f["p50_ms"], r["p50_ms"]), ratio(f["p99_ms"], r["p99_ms"]))
    console.print(table)
    console.print(f"PROFILE upstream on the busiest neuron: {res['profile_hub']}")
    console.print(f"PROFILE, former project-all query: {res['profile_hub_project_all']}")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(res, indent=2) + "\n")
    console.print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
