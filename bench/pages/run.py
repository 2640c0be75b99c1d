"""Dataset page latency: the page as served (from the version's summary kept at ingest, then
cached per version) against the same page computed afresh from live reads of the graph (the
summary's queries and the matplotlib drawing every time: what the page did before summaries).

    uv run python bench/pages/run.py                                  # 139k neurons, 3.7M edges
    uv run python bench/pages/run.py --neurons 20000 --edges 300000   # a quick look
    uv run python bench/pages/run.py --run-dir RUN_DIR                # also time a run's report

The synthetic FlyWire-size connectome (FlyWire-range ids; cached, as bench/ingest builds it)
goes into a fresh private Neo4j with the offline importer, which keeps the summary; keeping it
again is timed alone (its cost at ingest). GET /datasets/bench goes through the in-process ASGI
app: the first view (reads the summary, draws), then `--views` views (cached); the baseline is
`--fresh-views` fresh computations of the page from live reads, with no query limit. With
`--run-dir`, `connectome report` on it is timed too (its baseline: reading the run's tables and
volumes alone). Prints medians and ratios with the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httpx
import neo4j
import numpy as np

from bench.common import machine, private_server, ratio, synth_dataset
from connectome_query.graphdb import summary
from connectome_query.graphql_api.app import create_app
from connectome_query.graphql_api.auth import AuthConfig
from connectome_query.graphql_api.web import page_data, pages
from connectome_query.ingest.bulk_import import offline_import
from connectome_query.ingest.sources import read_source

KEY = "bench@v1"


async def measure(target: Any, views: int) -> dict[str, Any]:
    app = create_app(target, auth=AuthConfig())
    out: dict[str, Any] = {}
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bench",
            timeout=3600) as client:
        t = time.perf_counter()
        first = await client.get("/datasets/bench")
        out["first_s"] = time.perf_counter() - t
        assert first.status_code == 200, first.text[:300]
        cached = []
        for _ in range(views):
            t = time.perf_counter()
            assert (await client.get("/datasets/bench")).status_code == 200
            cached.append(time.perf_counter() - t)
        out["cached_s"] = cached
    return out


def fresh_page(target: Any, views: int) -> dict[str, Any]:
    """The baseline: the page's numbers read live from the graph and drawn, `views` times; and
    keeping the summary once more (what it adds to a load)."""
    out: dict[str, Any] = {"fresh_s": []}
    with neo4j.GraphDatabase.driver(target.uri, auth=(target.user, target.password)) as drv:
        t = time.perf_counter()
        summary.keep(drv, KEY, target.database)
        out["keep_summary_s"] = time.perf_counter() - t
        for _ in range(views):
            t = time.perf_counter()
            tables = page_data.summary_tables(summary.compute(drv, KEY, target.database))
            numbers = {**tables, "matrix": page_data.type_matrix(tables["pairs"],
                                                                 totals=tables["typeTotals"])}
            pages.dataset_figures("bench", numbers)
            out["fresh_s"].append(time.perf_counter() - t)
    return out


def time_report(run_dir: Path) -> dict[str, float]:
    from connectome_query.reconstruct.report import build

    t = time.perf_counter()
    build.report_data(run_dir)
    read_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        build.write_report(run_dir, Path(tmp) / "report.html")
        report_s = time.perf_counter() - t
    return {"report_s": report_s, "read_only_s": read_s}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--neurons", type=int, default=139_000)
    p.add_argument("--edges", type=int, default=3_700_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--views", type=int, default=5)
    p.add_argument("--fresh-views", type=int, default=2)
    p.add_argument("--id-range", default="flywire")
    p.add_argument("--heap", default="2g")
    p.add_argument("--pagecache", default="2g")
    p.add_argument("--run-dir", type=Path, default=None)
    p.add_argument("--json", type=Path, default=Path("bench/pages/results.json"))
    a = p.parse_args()
    res: dict[str, Any] = {"machine": machine(), "neurons": a.neurons, "edges": a.edges}
    folder, _ = synth_dataset(a.neurons, a.edges, a.seed, id_range=a.id_range)
    with private_server(a.heap, a.pagecache) as server:
        report, _ = offline_import(server, read_source(str(folder)), "bench", heap=a.heap)
        res["import_s"] = report.seconds
        res.update(asyncio.run(measure(server.target(), a.views)))
        res.update(fresh_page(server.target(), a.fresh_views))
    cached, fresh = float(np.median(res["cached_s"])), float(np.median(res["fresh_s"]))
    print(f"dataset page, {a.neurons:,} neurons, {a.edges:,} edges: first view "
          f"{res['first_s']:.2f} s; cached view median {cached:.3f} s; fresh computation "
          f"median {fresh:.2f} s; cached/fresh {cached / fresh:.4f}; first/fresh "
          f"{ratio(res['first_s'], fresh)}; keeping the summary {res['keep_summary_s']:.1f} s "
          f"of the {res['import_s']:.0f} s import")
    if a.run_dir:
        res["report"] = time_report(a.run_dir)
        r = res["report"]
        print(f"report of {a.run_dir.name}: {r['report_s']:.2f} s; reading its data alone "
              f"{r['read_only_s']:.2f} s; ratio {ratio(r['report_s'], r['read_only_s'])}")
    res["machine"]["load_avg_1m_end"] = machine()["load_avg_1m"]
    print(f"load average (1 min) at start {res['machine']['load_avg_1m']}, "
          f"end {res['machine']['load_avg_1m_end']}")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
