"""Streaming ingest of a large CAVE synapse table: peak memory and rows/s, beside the loader as it
was before streaming (same run), and the offline import of a FlyWire-size table with FlyWire-range
root ids.

    uv run python bench/ingest/stream.py                          # 20 M synapses (about 15 min)
    uv run python bench/ingest/stream.py --synapses 2000000       # a quick look

Data: `connectome synth-connectome --id-range flywire` (139,000 neurons, 3.7 M connections,
`--synapses` synapses with log-normal weights, Zipf cell types, 71 neuropils; root ids ~7.2e17),
cached. `synapses.parquet` is the CAVE table. Each step runs in a subprocess of its own, so its
peak RSS (ru_maxrss) is its own; a watchdog kills a step whose RSS passes `--rss-cap-gb`.

1. streamed: `ingest.prepare.prepare(open_source(table))`, the checking pass `connectome
   ingest` and `connectome import` run before any write (every value checked, repeated ids found,
   synapses counted per connection and ROI, spilling to disk).
2. baseline: the loader before streaming (commit `--baseline-commit`, the parent of the streaming
   change, extracted with `git archive`): `read_synapse_table`, the whole table read into pandas,
   checked and aggregated in memory, which is what it held before writing.
3. offline import (`ingest.bulk_import.offline_import`, what `connectome import` runs) of the
   table with its neurons.parquet into a fresh private Neo4j: checking pass, import CSV written a
   batch at a time, `neo4j-admin database import full`, start, schema. Python's peak RSS (the JVMs
   are other processes: neo4j-admin gets `--heap`) and synapse rows/s end to end.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from rich.console import Console
from rich.table import Table

from bench.common import machine, old_tree, ratio, run_step, synth_dataset

console = Console()
ROOT = Path(__file__).resolve().parents[2]

_PEAK = "import resource\npeak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"

STREAMED = """
import json, sys, time
from connectome_query.ingest.prepare import prepare
from connectome_query.ingest.sources import open_source
t = time.perf_counter()
prep = prepare(open_source(sys.argv[1]))
seconds = time.perf_counter() - t
out = {"seconds": seconds, "synapses": prep.synapses, "neurons": len(prep.bodies),
       "connections": prep.chemical_connections}
prep.close()
""" + _PEAK + "out['peak_rss_mb'] = peak\nprint(json.dumps(out))\n"

BASELINE = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[2])
import connectome_query
assert connectome_query.__file__.startswith(sys.argv[2]), connectome_query.__file__
from connectome_query.ingest.readers.synapse_table import read_synapse_table
t = time.perf_counter()
tables = read_synapse_table(Path(sys.argv[1]))
seconds = time.perf_counter() - t
out = {"seconds": seconds, "synapses": len(tables.synapses), "neurons": len(tables.neurons),
       "connections": len(tables.connections)}
""" + _PEAK + "out['peak_rss_mb'] = peak\nprint(json.dumps(out))\n"

IMPORT = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[4])
from bench.common import private_server
from connectome_query.ingest.bulk_import import offline_import
from connectome_query.ingest.sources import open_source
heap, pagecache = sys.argv[3].split(",")
with private_server(heap, pagecache) as server:
    source = open_source(sys.argv[1], neurons=Path(sys.argv[2]))
    report, timings = offline_import(server, source, "bench_stream", heap=heap)
    import neo4j
    t = server.target()
    with neo4j.GraphDatabase.driver(t.uri, auth=(t.user, t.password)) as drv:
        rows, _, _ = drv.execute_query(
            "MATCH (n:Neuron) RETURN min(n.bodyId) AS lo, max(n.bodyId) AS hi, count(*) AS n")
        rels, _, _ = drv.execute_query("MATCH ()-[r]->() RETURN count(r) AS n")
out = {"seconds": timings.total, "prepare_s": timings.prepare,
       "admin_import_s": timings.admin_import, "start_and_schema_s": timings.start_and_schema,
       "synapses": report.synapses, "neurons": report.neurons,
       "connections": report.chemical_connections, "relationships": rels[0]["n"],
       "min_body_id": rows[0]["lo"], "max_body_id": rows[0]["hi"], "neurons_in_db": rows[0]["n"]}
""" + _PEAK + "out['peak_rss_mb'] = peak\nprint(json.dumps(out))\n"


def report(res: dict[str, Any]) -> None:
    table = Table(title=f"CAVE table, {res['synapses']:,} synapse rows "
                        f"({res['file_mb']:.0f} MB Parquet)")
    for col in ("path", "seconds", "rows/s", "peak RSS MB", "baseline", "rows/s ratio",
                "memory ratio"):
        table.add_column(col)
    ours, base = res.get("streamed", {}), res.get("baseline", {})

    def rate(step: dict[str, Any]) -> float:
        return res["synapses"] / step["seconds"] if "seconds" in step else 0.0

    for name, step in (("streamed checking pass", ours), ("loader before streaming", base),
                       ("offline import, streamed, end to end", res.get("import", {}))):
        if not step:
            continue
        if "failed" in step:
            table.add_row(name, "-", "-", f"{step['peak_rss_mb']:,.0f}", "",
                          "failed: " + step["failed"][:100], "")
            continue
        vs = name == "streamed checking pass" and "seconds" in base
        table.add_row(name, f"{step['seconds']:.1f}", f"{rate(step):,.0f}",
                      f"{step['peak_rss_mb']:,.0f}", "loader before streaming" if vs else "",
                      ratio(rate(step), rate(base)) if vs else "",
                      ratio(base["peak_rss_mb"], step["peak_rss_mb"]) if vs else "")
    console.print(table)
    console.print("memory ratio = baseline peak RSS / ours (higher is better)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--neurons", type=int, default=139_000)
    p.add_argument("--edges", type=int, default=3_700_000)
    p.add_argument("--synapses", type=int, default=20_000_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--baseline-commit", default="42f1aac",
                   help="the loader before streaming (0: skip the baseline)")
    p.add_argument("--rss-cap-gb", type=float, default=12.0)
    p.add_argument("--heap", default="2g")
    p.add_argument("--pagecache", default="2g")
    p.add_argument("--skip", default="", help="comma list: streamed,baseline,import")
    p.add_argument("--json", type=Path, default=Path("bench/ingest/results-stream.json"))
    a = p.parse_args()
    skip = set(filter(None, a.skip.split(",")))
    folder, gen_s = synth_dataset(a.neurons, a.edges, a.seed, synapses=a.synapses,
                                  id_range="flywire")
    table = folder / "synapses.parquet"
    res: dict[str, Any] = {"machine": machine(), "neurons": a.neurons, "edges": a.edges,
                           "synapses": a.synapses, "generate_s": gen_s,
                           "file_mb": table.stat().st_size / 2**20, "heap": a.heap,
                           "pagecache": a.pagecache, "baseline_commit": a.baseline_commit}
    console.print(f"[bold]streaming ingest bench[/] {table} ({res['file_mb']:.0f} MB); "
                  f"machine {res['machine']}")
    if "streamed" not in skip:
        res["streamed"] = run_step("streamed checking pass", STREAMED, [str(table)],
                                   a.rss_cap_gb)
    if "baseline" not in skip and a.baseline_commit != "0":
        with tempfile.TemporaryDirectory(prefix="ingest-baseline-") as tmp:
            old = old_tree(a.baseline_commit, Path(tmp))
            res["baseline"] = run_step(f"loader before streaming ({a.baseline_commit})",
                                       BASELINE, [str(table), str(old)], a.rss_cap_gb)
    if "import" not in skip:
        res["import"] = run_step("offline import, streamed", IMPORT,
                                 [str(table), str(folder / "neurons.parquet"),
                                  f"{a.heap},{a.pagecache}", str(ROOT)], a.rss_cap_gb)
    report(res)
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(res, indent=2) + "\n")
    console.print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
