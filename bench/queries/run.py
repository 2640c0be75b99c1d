"""Latency of every circuit query: through GraphQL, beside the same Cypher sent raw.

    uv run python bench/queries/run.py                          # default scale (see --help)
    uv run python bench/queries/run.py --neurons 2000 --edges 20000 --synapses 100000  # quick

What it does, in one run:
1. draws a heavy-tailed synthetic connectome with `ingest.synth_connectome` (Zipf type sizes,
   log-normal degrees and weights, ROIs, postsynaptic compartments, chandelier types that
   synapse on axon initial segments) and writes it as a CAVE-style synapse table + neurons;
2. starts a private Neo4j 5.26 and ingests it with the project's own reader and loader
   (`read_synapse_table` + `ingest.loader.load`, chandelier classification included);
3. for each circuit field, runs a set of realistic requests through the FastAPI app
   (in-process HTTP, Strawberry, DataLoaders, the async driver) and records, for the same
   requests, the exact Cypher and parameters the resolvers sent; then replays that Cypher raw
   through the async driver (read transactions, no GraphQL) and reports p50/p99 of both and
   their ratio. Every request is repeated `--reps` times, after one warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.common import free_port  # noqa: E402
from connectome_query.graphdb import catalog  # noqa: E402
from connectome_query.schema.model import is_current  # noqa: E402

BUDGET_S = 60.0
"""Rough time per field and path (GraphQL, raw) before repeats are cut (never below 3)."""



def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000.0, q))


def requests(driver: Any, ds: str) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Per field, a few realistic (query, variables) pairs drawn from the loaded data."""
    def q(cypher: str, **params: Any) -> list[Any]:
        return driver.execute_query(cypher, params, database_="neo4j").records

    key = catalog.resolve(driver, ds).key  # what the dataset's nodes carry now

    hubs = [r["b"] for r in q("""MATCH (n:Neuron {dataset: $d}) RETURN n.bodyId AS b
        ORDER BY n.pre + n.post DESC LIMIT 3""", d=key)]
    rng = np.random.default_rng(0)
    some = [r["b"] for r in q("MATCH (n:Neuron {dataset: $d}) WHERE n.pre > 20 AND n.post > 20 "
                              "RETURN n.bodyId AS b LIMIT 2000", d=key)]
    picks = [int(x) for x in rng.choice(some, size=3, replace=False)]
    chc = [r["b"] for r in q("""MATCH (n:Neuron {dataset: $d}) WHERE n.chandelier
        RETURN n.bodyId AS b ORDER BY n.bodyId LIMIT 3""", d=key)]
    ais_targets = [r["b"] for r in q("""MATCH (s:Synapse {dataset: $d, postCompartment: 'ais'})
        RETURN s.postBodyId AS b, count(*) AS n ORDER BY n DESC LIMIT 3""", d=key)]
    types = [r["t"] for r in q("""MATCH (n:Neuron {dataset: $d}) WHERE n.type IS NOT NULL
        WITH n.type AS t, count(*) AS c WHERE c >= 3 AND c <= 8 RETURN t ORDER BY t LIMIT 40""",
                                d=key)]
    big_types = [r["t"] for r in q("""MATCH (n:Neuron {dataset: $d}) WITH n.type AS t,
        count(*) AS c ORDER BY c DESC LIMIT 3 RETURN t""", d=key)]
    pairs = [(r["a"], r["b"]) for r in q("""MATCH (a:Neuron {dataset: $d})-[c:ConnectsTo]->(b)
        WHERE c.weight >= 5 RETURN a.bodyId AS a, b.bodyId AS b LIMIT 3""", d=key)]
    reach = [(r["a"], r["b"]) for r in q("""MATCH (a:Neuron {dataset: $d})-[c1:ConnectsTo]->()
        -[c2:ConnectsTo]->()-[c3:ConnectsTo]->(b) WHERE c1.weight >= 3 AND c2.weight >= 3
        AND c3.weight >= 3 AND a <> b AND NOT (a)-[:ConnectsTo]->(b)
        RETURN a.bodyId AS a, b.bodyId AS b LIMIT 3""", d=key)]
    roi = q("""MATCH (:Neuron {dataset: $d})-[c:ConnectsTo]->() WHERE c.rois IS NOT NULL
        UNWIND c.rois AS r RETURN r LIMIT 1""", d=key)[0]["r"]
    ids = [str(x) for x in hubs + picks]
    nb = "bodyId type"
    out: dict[str, list[tuple[str, dict[str, Any]]]] = {
        "chandelierCells (+targets, DataLoader)": [(f"""query($a: String) {{ chandelierCells(
            dataset: "{ds}", first: 20, after: $a) {{ totalCount cells {{ aisOutputFraction
            neuron {{ {nb} }} targets(first: 20) {{ synapseCount neuron {{ {nb} }} }} }} }} }}""",
                                                    {"a": None})],
        "chandelierInnervation": [(f"""query($p: BodyId) {{ chandelierInnervation(
            dataset: "{ds}", pre: $p, first: 50) {{ contacts {{ synapseCount pre {{ bodyId }}
            post {{ bodyId }} synapses {{ synapseId location {{ x y z }} }} }} }} }}""",
                                   {"p": str(c)}) for c in chc],
        "chandelierInnervation (inverse)": [(f"""query($p: BodyId) {{ chandelierInnervation(
            dataset: "{ds}", post: $p) {{ contacts {{ synapseCount pre {{ {nb} }} }} }} }}""",
                                             {"p": str(t)}) for t in ais_targets],
        "multiSynapticContacts": [(f"""query($k: Int!, $t: String) {{ multiSynapticContacts(
            dataset: "{ds}", minSynapses: $k, preType: $t, first: 100) {{ contacts {{
            synapseCount pre {{ bodyId }} post {{ bodyId }} synapses {{ synapseId }} }}
            pageInfo {{ endCursor }} }} }}""", {"k": k, "t": t})
                                  for k, t in ((10, None), (5, big_types[0]), (20, None))],
        "multiSynapticContacts (compartment)": [(f"""query($t: String) {{ multiSynapticContacts(
            dataset: "{ds}", minSynapses: 3, preType: $t, compartment: SOMA, first: 100) {{
            contacts {{ synapseCount pre {{ bodyId }} post {{ bodyId }} }} }} }}""", {"t": t})
                                                for t in big_types],
        "synapsesPerConnection": [(f"""query($t: String) {{ synapsesPerConnection(
            dataset: "{ds}", preType: $t) {{ synapses connections }} }}""", {"t": t})
                                  for t in big_types],
        "partnersByType": [(f"""query($id: BodyId!) {{ partnersByType(dataset: "{ds}",
            neuron: {{bodyId: $id}}, direction: UPSTREAM, minWeight: 2) {{ type neurons synapses
            partners {{ weight partner {{ bodyId }} }} }} }}""", {"id": i}) for i in ids],
        "partnersByType (roi)": [(f"""query($id: BodyId!, $r: String) {{ partnersByType(
            dataset: "{ds}", neuron: {{bodyId: $id}}, roi: $r) {{ type neurons synapses }} }}""",
                                  {"id": i, "r": roi}) for i in ids],
        "partnersByType (compartment)": [(f"""query($id: BodyId!) {{ partnersByType(
            dataset: "{ds}", neuron: {{bodyId: $id}}, direction: UPSTREAM,
            compartment: DENDRITE) {{ type neurons synapses }} }}""", {"id": i}) for i in ids],
        "shortestPaths (neurons)": [(f"""query($a: BodyId, $b: BodyId) {{ shortestPaths(
            dataset: "{ds}", source: {{bodyId: $a}}, target: {{bodyId: $b}}, minWeight: 3) {{
            paths {{ weights neurons {{ bodyId }} }} }} }}""", {"a": str(a), "b": str(b)})
                                    for a, b in reach],
        "shortestPaths (types)": [(f"""query($a: String, $b: String) {{ shortestPaths(
            dataset: "{ds}", source: {{type: $a}}, target: {{type: $b}}, minWeight: 2) {{
            paths {{ weights neurons {{ bodyId }} }} }} }}""", {"a": a, "b": b})
                                  for a, b in zip(types[0:3], types[3:6], strict=True)],
        "simplePaths (L=3)": [(f"""query($a: BodyId, $b: BodyId) {{ simplePaths(dataset: "{ds}",
            source: {{bodyId: $a}}, target: {{bodyId: $b}}, minWeight: 3, maxLength: 3,
            first: 100) {{ truncated paths {{ weights }} }} }}""", {"a": str(a), "b": str(b)})
                              for a, b in reach + pairs],
        "reciprocalPairs": [(f"""query($w: Int!) {{ reciprocalPairs(dataset: "{ds}",
            minWeight: $w, first: 100) {{ pairs {{ forward backward a {{ bodyId }} b {{ bodyId }}
            }} pageInfo {{ endCursor }} }} }}""", {"w": w}) for w in (2, 5, 10)],
        "feedForwardLoops": [(f"""query($w: Int!) {{ feedForwardLoops(dataset: "{ds}",
            minWeight: $w, first: 100) {{ matches {{ nodes {{ neuron {{ bodyId }} }} }} }} }}""",
                              {"w": w}) for w in (5, 10, 20)],
        "motif (chandelier pair onto one AIS)": [(f"""{{ motif(dataset: "{ds}", first: 100,
            edges: [{{source: "x", target: "p", minWeight: 2}}, {{source: "y", target: "p",
            minWeight: 2}}], nodes: [{{name: "x", chandelier: true}},
            {{name: "y", chandelier: true}}]) {{ matches {{ nodes {{ neuron {{ bodyId }} }} }}
            }} }}""", {})],
        "typeConnectivity (all types)": [(f"""{{ typeConnectivity(dataset: "{ds}", minWeight: 1,
            first: 1000) {{ preType postType synapses connections preNeurons postNeurons
            preTypeNeurons postTypeNeurons }} }}""", {})],
        "typeConnectivity (selected)": [(f"""query($t: [String!]) {{ typeConnectivity(
            dataset: "{ds}", preTypes: $t) {{ preType postType synapses connections }} }}""",
                                         {"t": big_types})],
        "neuroglancer (pair synapses)": [(f"""query($a: BodyId, $b: BodyId) {{ neuroglancer(
            dataset: "{ds}", pre: $a, post: $b) {{ url synapseCount }} }}""",
                                          {"a": str(a), "b": str(b)}) for a, b in pairs],
    }
    return {k: v for k, v in out.items() if v}


async def replay(driver: Any, calls: list[tuple[str, dict[str, Any], float]]) -> float:
    """The recorded Cypher, sent raw through the async driver in read transactions."""
    import neo4j

    t0 = time.perf_counter()
    for cypher, params, timeout in calls:
        @neo4j.unit_of_work(timeout=timeout)
        async def work(tx: Any, c: str = cypher, p: dict[str, Any] = params) -> list[Any]:
            result = await tx.run(c, p)
            return [r.data() for r in await result.fetch(10**9)]

        async with driver.session(database="neo4j",
                                  default_access_mode=neo4j.READ_ACCESS) as session:
            await session.execute_read(work)
    return time.perf_counter() - t0


def measure(target: Any, ds: str, reps: int, only: str | None) -> list[dict[str, Any]]:
    from fastapi.testclient import TestClient

    from connectome_query.graphdb.driver import open_async_driver, open_driver
    from connectome_query.graphql_api.app import create_app
    from connectome_query.graphql_api.context import ApiContext
    from connectome_query.graphql_api.db import query_timeout

    with open_driver(target) as sync_driver:
        fields = requests(sync_driver, ds)
    recorded: list[tuple[str, dict[str, Any], float]] = []
    real_read = ApiContext.read_circuit

    async def recording(self: ApiContext, cypher: str, params: dict[str, Any]) -> Any:
        """Every read a circuit field sends (its DataLoader's included), as sent."""
        recorded.append((cypher, params, query_timeout()))
        return await real_read(self, cypher, params)

    ApiContext.read_circuit = recording  # type: ignore[method-assign]
    results = []
    with TestClient(create_app(target)) as client:
        for field, reqs in fields.items():
            if only and only.lower() not in field.lower():
                continue
            api: list[float] = []
            plans: list[list[tuple[str, dict[str, Any], float]]] = []
            field_reps = reps
            for query, variables in reqs:
                body = {"query": query, "variables": variables}
                recorded.clear()
                t0 = time.perf_counter()
                answer = client.post("/graphql", json=body).json()  # warm-up and recording
                if answer.get("errors"):
                    raise SystemExit(f"{field}: {answer['errors']}")
                # Slow fields: fewer repeats (at least 3), about a minute per field and path.
                field_reps = min(field_reps, max(3, int(BUDGET_S / len(reqs)
                                                        / max(time.perf_counter() - t0, 1e-3))))
                plans.append(list(recorded))
            for query, variables in reqs:
                body = {"query": query, "variables": variables}
                for _ in range(field_reps):
                    t0 = time.perf_counter()
                    client.post("/graphql", json=body).json()
                    api.append(time.perf_counter() - t0)

            async def raw_all(plans: list[Any] = plans, field_reps: int = field_reps
                              ) -> list[float]:
                drv = open_async_driver(target)
                try:
                    out = []
                    for plan in plans:
                        await replay(drv, plan)  # warm-up
                        for _ in range(field_reps):
                            out.append(await replay(drv, plan))
                    return out
                finally:
                    await drv.close()

            raw = asyncio.run(raw_all())
            row: dict[str, Any] = {"field": field, "requests": len(reqs), "reps": field_reps,
                   "samples": len(api),
                   "cypher_per_request": round(sum(map(len, plans)) / len(plans), 1),
                   "api_p50_ms": pct(api, 50), "api_p99_ms": pct(api, 99),
                   "raw_p50_ms": pct(raw, 50), "raw_p99_ms": pct(raw, 99)}
            row["p50_ratio"] = row["api_p50_ms"] / max(row["raw_p50_ms"], 1e-6)
            results.append(row)
            print(f"{field:40s} api p50 {row['api_p50_ms']:8.1f} ms p99 "
                  f"{row['api_p99_ms']:8.1f} | raw p50 {row['raw_p50_ms']:8.1f} p99 "
                  f"{row['raw_p99_ms']:8.1f} | x{row['p50_ratio']:.2f}", flush=True)
    ApiContext.read_circuit = real_read  # type: ignore[method-assign]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--neurons", type=int, default=20_000)
    parser.add_argument("--edges", type=int, default=200_000)
    parser.add_argument("--synapses", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reps", type=int, default=20, help="timed repeats per request")
    parser.add_argument("--heap", default="2g")
    parser.add_argument("--home", type=Path, default=None,
                        help="keep the server here and reuse its data when the scale matches")
    parser.add_argument("--only", default=None, help="only fields whose name contains this")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    import logging

    logging.getLogger("neo4j.notifications").setLevel(logging.ERROR)

    from connectome_query.graphdb.local_server import LocalNeo4j
    from connectome_query.graphdb.settings import LocalServerConfig, cache_dir
    from connectome_query.ingest.loader import load
    from connectome_query.ingest.readers.synapse_table import read_synapse_table
    from connectome_query.ingest.synth_connectome import synth_connectome

    ds = "bench_circuits"
    spec = f"{args.neurons}/{args.edges}/{args.synapses}/{args.seed}"
    home = (args.home or Path(tempfile.mkdtemp(prefix="bench-queries-"))).resolve()
    home.mkdir(parents=True, exist_ok=True)
    server = LocalNeo4j(LocalServerConfig(home=home, cache=cache_dir(), bolt_port=free_port(),
                                          heap=args.heap, pagecache="2g", tx_timeout="600s"))
    t0 = time.perf_counter()
    target = server.start(timeout=300)
    print(f"Neo4j up in {time.perf_counter() - t0:.0f} s at {target.uri} (home {home})",
          flush=True)
    try:
        from connectome_query.graphdb.driver import open_driver

        with open_driver(target) as driver:
            have = driver.execute_query(
                f"MATCH (m:Meta {{name: $d}}) WHERE {is_current('m')} RETURN m.benchSpec AS s",
                d=ds).records
            facts: dict[str, Any] = {}
            if not have or have[0]["s"] != spec or (args.home is None):
                with tempfile.TemporaryDirectory() as tmp:
                    t0 = time.perf_counter()
                    rep = synth_connectome(Path(tmp), neurons=args.neurons, edges=args.edges,
                                           synapses=args.synapses, seed=args.seed)
                    print(f"generated {rep.neurons} neurons, {rep.edges} connections, "
                          f"{rep.synapses} synapses, {rep.types} types in "
                          f"{time.perf_counter() - t0:.0f} s", flush=True)
                    tables = read_synapse_table(Path(tmp) / "synapses.parquet",
                                                neurons_path=Path(tmp) / "neurons.parquet")
                tables.meta["benchSpec"] = spec
                tables.meta["neuroglancerSource"] = "precomputed://gs://example/bench-seg"
                t0 = time.perf_counter()
                last = [0.0]

                def progress(step: str, done: int, total: int) -> None:
                    if time.perf_counter() - last[0] > 30 or done == total:
                        last[0] = time.perf_counter()
                        print(f"  {step}: {done}/{total}", flush=True)

                report = load(driver, tables, ds, progress=progress)
                facts["ingest_s"] = round(time.perf_counter() - t0, 1)
                print(f"ingested in {facts['ingest_s']} s: {report}", flush=True)
            meta = driver.execute_query("MATCH (m:Meta {dataset: $d}) RETURN m",
                                        d=catalog.resolve(driver, ds).key).records[0]["m"]
            facts.update({k: meta[k] for k in ("neuronCount", "chemicalConnections",
                                                "chemicalSynapses", "synapseCount",
                                                "chandelierCount")})
            print(json.dumps(facts), flush=True)
        os.environ.setdefault("CONNECTOME_QUERY_TIMEOUT_S", "120")
        results = measure(target, ds, args.reps, args.only)
        if args.json:
            args.json.write_text(json.dumps({"scale": facts, "results": results}, indent=2))
        print("\n| field | requests × reps | Cypher/request | GraphQL p50 ms | GraphQL p99 ms "
              "| raw p50 ms | raw p99 ms | p50 ratio |\n|---|---|---|---|---|---|---|---|")
        for r in results:
            print(f"| {r['field']} | {r['requests']} × {r['reps']} | {r['cypher_per_request']} "
                  f"| {r['api_p50_ms']:.1f} | {r['api_p99_ms']:.1f} | {r['raw_p50_ms']:.1f} "
                  f"| {r['raw_p99_ms']:.1f} | {r['p50_ratio']:.2f} |")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
