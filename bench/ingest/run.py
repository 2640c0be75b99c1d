"""Ingest throughput: the batched loader vs one row per transaction vs neo4j-admin import.

    uv run python bench/ingest/run.py                                   # 139k neurons, 3.7M edges
    uv run python bench/ingest/run.py --neurons 20000 --edges 300000    # a quick look

In one run, on a synthetic FlyWire-size connectome (`connectome synth-connectome`, cached):
1. the generator: seconds, and peak memory for a 20M-synapse table (`--synapses`, a subprocess);
2. the batched loader (`ingest.loader.load`, UNWIND/MERGE, 10k rows per transaction) into a
   fresh private Neo4j: relationships/s end to end (validation, row building, writes, prune);
3. baseline: the same MERGE statement with ONE row per transaction, on a `--sample` of the
   connections (into a second dataset holding the same neurons): rows/s;
4. tuning on a smaller tuning set (`--tune-neurons/--tune-edges`): batch sizes, and the loader
   with the neo4j-rust-ext packstream codec switched off (a subprocess that hides it);
5. the offline importer (`ingest.bulk_import.offline_import`: CSV + `neo4j-admin database
   import full` + start + constraints/indexes + Meta) into another fresh server: relationships/s.
Every figure is printed beside its baseline with the ratio, and written to --json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
if "--worker-no-rust" in sys.argv:  # before the driver is imported: hide its Rust codec
    sys.modules["neo4j._rust"] = None  # type: ignore[assignment]

import neo4j
import pandas as pd
from rich.console import Console
from rich.table import Table

from bench.common import machine, private_server, ratio, synth_dataset
from connectome_query.ingest.bulk_import import offline_import
from connectome_query.ingest.loader import WRITE_CHEMICAL, _write_batch, connection_rows, load
from connectome_query.ingest.sources import read_source
from connectome_query.ingest.tables import ConnectomeTables

console = Console()


def _driver(server: Any) -> neo4j.Driver:
    t = server.target()
    return neo4j.GraphDatabase.driver(t.uri, auth=(t.user, t.password),
                                      notifications_min_severity="OFF")


def single_row_baseline(drv: neo4j.Driver, tables: ConnectomeTables, sample: int) -> float:
    """Rows/s for one MERGE per transaction (the loader's statement, batch of one)."""
    neurons_only = ConnectomeTables(source=tables.source, neurons=tables.neurons,
                                    connections=tables.connections.iloc[:0], meta={})
    load(drv, neurons_only, "bench_onerow")
    chem = tables.connections[tables.connections["kind"] == "chemical"]
    rows = connection_rows(chem.sample(n=min(sample, len(chem)), random_state=0))
    load_id = uuid.uuid4().hex
    with drv.session() as session:
        t = time.perf_counter()
        for row in rows:
            session.execute_write(_write_batch, WRITE_CHEMICAL, [row], "bench_onerow", load_id)
        seconds = time.perf_counter() - t
    return len(rows) / seconds


def generator_memory(neurons: int, edges: int, synapses: int) -> dict[str, float]:
    """Generate a synapse table in a subprocess; its wall time and peak RSS."""
    code = (
        "import resource, sys, tempfile, time\nfrom pathlib import Path\n"
        "from ingest.synth_connectome import synth_connectome\n"
        "with tempfile.TemporaryDirectory() as d:\n"
        "    t = time.perf_counter()\n"
        f"    r = synth_connectome(Path(d), neurons={neurons}, edges={edges}, "
        f"synapses={synapses}, seed=1)\n"
        "    print(time.perf_counter() - t, r.synapses, "
        "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    return {"seconds": float(out[0]), "synapses": int(out[1]), "peak_rss_mb": float(out[2])}


def tune_worker(folder: str, uri: str, password: str, dataset: str, batch: int,
                create: bool) -> None:
    """Subprocess body: load `folder` as `dataset`; print relationships/s as JSON."""
    from neo4j._codec.packstream import v1

    from connectome_query.ingest import loader

    if create:  # a fresh dataset has no relationships to merge with: CREATE them
        loader.WRITE_CHEMICAL = loader.WRITE_CHEMICAL.replace(
            "MERGE (a)-[c:ConnectsTo]->(b)", "CREATE (a)-[c:ConnectsTo]->(b)")
    tables = read_source(folder)
    with neo4j.GraphDatabase.driver(uri, auth=("neo4j", password),
                                    notifications_min_severity="OFF") as drv:
        report = loader.load(drv, tables, dataset, batch_size=batch)
    print(json.dumps({"rust": v1._rust_pack is not None, "seconds": report.seconds,
                      "rels_per_s": report.chemical_connections / report.seconds}))


def run_tune(server: Any, folder: Path, dataset: str, batch: int, no_rust: bool = False,
             create: bool = False) -> dict[str, Any]:
    t = server.target()
    cmd = [sys.executable, __file__, "--worker", str(folder), "--worker-uri", t.uri,
           "--worker-password", t.password, "--worker-dataset", dataset,
           "--worker-batch", str(batch)] + (["--worker-no-rust"] if no_rust else []) + (
               ["--worker-create"] if create else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--neurons", type=int, default=139_000)
    p.add_argument("--edges", type=int, default=3_700_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--sample", type=int, default=2000, help="rows for the one-row baseline")
    p.add_argument("--synapses", type=int, default=20_000_000,
                   help="synapse-table size for the generator memory check (0: skip)")
    p.add_argument("--tune-neurons", type=int, default=20_000)
    p.add_argument("--tune-edges", type=int, default=300_000)
    p.add_argument("--batches", default="1000,10000,50000")
    p.add_argument("--heap", default="3g")
    p.add_argument("--pagecache", default="3g")
    p.add_argument("--skip", default="", help="comma list: generator,loader,onerow,tune,import")
    p.add_argument("--json", type=Path, default=Path("bench/ingest/results.json"))
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--worker-uri", help=argparse.SUPPRESS)
    p.add_argument("--worker-password", help=argparse.SUPPRESS)
    p.add_argument("--worker-dataset", help=argparse.SUPPRESS)
    p.add_argument("--worker-batch", type=int, help=argparse.SUPPRESS)
    p.add_argument("--worker-no-rust", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--worker-create", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        tune_worker(a.worker, a.worker_uri, a.worker_password, a.worker_dataset,
                    a.worker_batch, a.worker_create)
        return
    skip = set(filter(None, a.skip.split(",")))
    res: dict[str, Any] = {"machine": machine(), "neurons": a.neurons, "edges": a.edges,
                           "heap": a.heap, "pagecache": a.pagecache}
    console.print(f"[bold]ingest bench[/] {a.neurons:,} neurons, {a.edges:,} connections; "
                  f"machine {res['machine']}")

    folder, gen_s = synth_dataset(a.neurons, a.edges, a.seed)
    res["generate_s"] = gen_s
    if "generator" not in skip and a.synapses:
        res["generator_synapses"] = generator_memory(a.neurons, a.edges, a.synapses)
        console.print(f"generator, {a.synapses:,} synapses: {res['generator_synapses']}")
    t = time.perf_counter()
    tables = read_source(str(folder))
    res["read_s"] = time.perf_counter() - t
    n_rel = int((tables.connections["kind"] == "chemical").sum())
    console.print(f"read {n_rel:,} connections in {res['read_s']:.1f} s")

    with private_server(a.heap, a.pagecache) as server:
        server.start(timeout=300)
        with _driver(server) as drv:
            if "loader" not in skip:
                rep = load(drv, tables, "bench")
                res["loader"] = {"seconds": rep.seconds, "rels_per_s": n_rel / rep.seconds,
                                 "rows_per_s": (n_rel + rep.neurons) / rep.seconds}
                console.print(f"loader: {res['loader']}")
            if "onerow" not in skip:
                res["onerow_rows_per_s"] = single_row_baseline(drv, tables, a.sample)
                console.print(f"one row per transaction: {res['onerow_rows_per_s']:.0f} rows/s")
        if "tune" not in skip:
            tune_folder, _ = synth_dataset(a.tune_neurons, a.tune_edges, a.seed + 1)
            tune: dict[str, Any] = {}
            for bs in (int(b) for b in a.batches.split(",")):
                tune[f"batch_{bs}"] = run_tune(server, tune_folder, f"tune_b{bs}", bs, False)
                console.print(f"tune batch {bs}: {tune[f'batch_{bs}']}")
            tune["no_rust_batch_10000"] = run_tune(server, tune_folder, "tune_norust", 10_000,
                                                   no_rust=True)
            tune["create_not_merge_batch_10000"] = run_tune(server, tune_folder, "tune_create",
                                                            10_000, create=True)
            tune["batch_10000_again"] = run_tune(server, tune_folder, "tune_again", 10_000)
            console.print(f"tune: {tune}")
            res["tune"] = tune
    if "import" not in skip:
        with private_server(a.heap, a.pagecache) as fresh:
            rep, timings = offline_import(fresh, tables, "bench", heap=a.heap)
            res["import"] = {"seconds": timings.total, "admin_import_s": timings.admin_import,
                             "prepare_s": timings.prepare,
                             "start_and_schema_s": timings.start_and_schema,
                             "rels_per_s": n_rel / timings.total,
                             "admin_rels_per_s": n_rel / timings.admin_import}
            console.print(f"offline import: {res['import']}")
    report(res)
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(res, indent=2) + "\n")
    console.print(f"wrote {a.json}")


def report(res: dict[str, Any]) -> None:
    table = Table(title="ingest: relationships/s (higher is better)")
    for col in ("path", "rels/s", "baseline", "baseline rels/s", "ratio"):
        table.add_column(col)
    one = res.get("onerow_rows_per_s")
    loader = res.get("loader", {}).get("rels_per_s")
    if loader and one:
        table.add_row("batched loader (10k/tx)", f"{loader:,.0f}", "1 row/tx MERGE",
                      f"{one:,.0f}", ratio(loader, one))
    imp = res.get("import")
    if imp and loader:
        table.add_row("offline import (end to end)", f"{imp['rels_per_s']:,.0f}",
                      "batched loader", f"{loader:,.0f}", ratio(imp["rels_per_s"], loader))
        table.add_row("neo4j-admin import alone", f"{imp['admin_rels_per_s']:,.0f}",
                      "batched loader", f"{loader:,.0f}",
                      ratio(imp["admin_rels_per_s"], loader))
    tune = res.get("tune", {})
    base = tune.get("batch_10000", {}).get("rels_per_s")
    for key, val in tune.items():
        if base and key != "batch_10000":
            table.add_row(f"tuning set: {key}", f"{val['rels_per_s']:,.0f}", "batch 10000",
                          f"{base:,.0f}", ratio(val["rels_per_s"], base))
    console.print(table)
    if isinstance(df := res.get("generator_synapses"), dict):
        console.print(pd.Series(df).to_string())


if __name__ == "__main__":
    main()
