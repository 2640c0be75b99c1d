"""Codex downloads and neuPrint bulk exports at FlyWire scale: our checked, streamed read and its
load into Neo4j, beside pandas and the read as it was before streaming, in the same run.

    uv run python bench/sources/run.py                              # 139k neurons, 3.8M rows
    uv run python bench/sources/run.py --neurons 20000 --rows 400000 --load offline

Synthetic files shaped like a FlyWire Codex download (`connections.csv.gz`, one row per
(pre, post, neuropil), `neurons.csv`, `classification.csv`) and a neuPrint bulk export
(`traced-*.csv`) of the same connections, cached by size and seed. Each step runs in a fresh
interpreter, so its peak RSS (VmHWM, the Python process alone) is its own:
1. ours: `open_source` + `prepare` (every value checked, neuropil/ROI rows folded into
   connections with their ROI weights a bucket at a time, spilling to disk, neuron tables joined);
2. before streaming: the same with the tree of `--baseline-commit` (every row held in memory
   while folded);
3. pandas: `read_csv` of the same files + `groupby(pre, post).sum()` (no checks, no ROI weights);
4. `--load offline|online|both`: `connectome import` (`offline_import`) and/or `connectome ingest`
   (`load`) of each folder into a fresh private Neo4j: seconds end to end (the import's include
   starting Neo4j and building its indexes, the loader's start on a running server) and peak RSS
   at the end of the load. Then the graph is checked against pandas over the raw files:
   connection count and total weight, the ROI weights of a random sample of connections, and an
   export restricted to two neuropils.
Figures go to --json with the machine and the load average before and after each step.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from bench.common import ROOT, machine, old_tree, ratio, run_step
from connectome_query.graphdb.settings import cache_dir

console = Console()
NEUROPILS = [f"NP{i:02d}_{side}" for i in range(40) for side in "LR"]
CHECK_ROIS = ("NP03_L", "NP17_R")
ADMIN_BUDGET = 100_000
"""Relationships/s the neo4j-admin import step must reach at FlyWire scale."""

_PEAK = ("out['peak_rss_mb'] = [int(line.split()[1]) / 1024 for line in open('/proc/self/status')\n"
         "                      if line.startswith('VmHWM:')][0]\n")
"""This process's own peak RSS (ru_maxrss would carry over the forking parent's peak)."""

OURS = """
import json, sys, time
sys.path.insert(0, sys.argv[2])
import connectome_query
assert connectome_query.__file__.startswith(sys.argv[2]), connectome_query.__file__
from connectome_query.ingest.prepare import prepare
from connectome_query.ingest.sources import open_source
t = time.perf_counter()
prep = prepare(open_source(sys.argv[1]))
out = {"seconds": time.perf_counter() - t, "connections": prep.chemical_connections,
       "neurons": len(prep.bodies)}
prep.close()
""" + _PEAK + "print(json.dumps(out))\n"

PANDAS = """
import json, sys, time
import pandas as pd
folder = sys.argv[1]
t = time.perf_counter()
if folder.endswith("codex"):
    conns = pd.read_csv(folder + "/connections.csv.gz")
    pd.read_csv(folder + "/neurons.csv").merge(pd.read_csv(folder + "/classification.csv"),
                                               on="root_id")
    n = len(conns.groupby(["pre_root_id", "post_root_id"])["syn_count"].sum())
else:
    pd.read_csv(folder + "/traced-neurons.csv")
    total = pd.read_csv(folder + "/traced-total-connections.csv")
    roi = pd.read_csv(folder + "/traced-roi-connections.csv")
    n = len(total.merge(roi.groupby(["bodyId_pre", "bodyId_post"], as_index=False)["weight"]
                        .sum(), on=["bodyId_pre", "bodyId_post"], how="left"))
out = {"seconds": time.perf_counter() - t, "connections": n}
""" + _PEAK + "print(json.dumps(out))\n"

LOAD = """
import json, sys, time
sys.path.insert(0, sys.argv[5])
import neo4j
import pandas as pd
from bench.common import private_server
from connectome_query.export.matrix import collect, prepare as plan_export
from connectome_query.export.request import MatrixRequest
from connectome_query.graphdb import catalog
from connectome_query.ingest.bulk_import import offline_import
from connectome_query.ingest.loader import load
from connectome_query.ingest.sources import open_source
folder, mode, memory, sample = sys.argv[1:5]
heap, pagecache = memory.split(",")
with private_server(heap, pagecache) as server:
    t = time.perf_counter()
    if mode == "offline":
        report, timings = offline_import(server, open_source(folder), "bench_sources", heap=heap)
        rels = report.chemical_connections + report.electrical_connections
        out = {"prepare_s": timings.prepare, "admin_import_s": timings.admin_import,
               "start_and_schema_s": timings.start_and_schema, "admin_relationships": rels,
               "admin_rels_per_s": rels / timings.admin_import,
               "admin_stages_s": timings.admin_stages()}
        tool = out["admin_stages_s"].get("IMPORT DONE")
        if tool:
            out["admin_tool_rels_per_s"] = rels / tool
    else:
        server.start()
        t = time.perf_counter()
        tg = server.target()
        with neo4j.GraphDatabase.driver(tg.uri, auth=(tg.user, tg.password)) as drv:
            report = load(drv, open_source(folder), "bench_sources")
        out = {}
    out.update({"seconds": time.perf_counter() - t, "neurons": report.neurons,
                "connections": report.chemical_connections})
    out["peak_rss_mb"] = [int(line.split()[1]) / 1024 for line in open("/proc/self/status")
                          if line.startswith("VmHWM:")][0]
    tg = server.target()
    with neo4j.GraphDatabase.driver(tg.uri, auth=(tg.user, tg.password)) as drv:
        key = catalog.resolve(drv, "bench_sources").key
        rows, _, _ = drv.execute_query(
            "MATCH (:Neuron {dataset: $k})-[c:ConnectsTo]->() RETURN count(c) AS n, "
            "sum(c.weight) AS w", k=key)
        out["graph_connections"], out["graph_weight"] = rows[0]["n"], rows[0]["w"]
        rows, _, _ = drv.execute_query(
            "MATCH (a:Neuron {dataset: $k})-[c:ConnectsTo]->(b) WHERE rand() < $p "
            "RETURN a.bodyId AS pre, b.bodyId AS post, c.weight AS weight, c.rois AS rois, "
            "c.roiWeights AS roiWeights", k=key, p=2000 / max(out["graph_connections"], 1))
        pd.DataFrame([r.data() for r in rows]).to_json(sample + ".sample.json")
        plan = plan_export(drv, MatrixRequest(dataset="bench_sources", rois=tuple(
            sys.argv[6].split(",")), min_weight=1))
        chunk, ids = collect(drv, plan)
        pd.DataFrame({"pre": ids[chunk.rows], "post": ids[chunk.cols],
                      "weight": chunk.weights}).to_parquet(sample + ".export.parquet")
print(json.dumps(out))
"""


def write_files(folder: Path, neurons: int, rows: int, seed: int) -> None:
    """A Codex folder and a neuPrint bulk-export folder holding the same connections."""
    rng = np.random.default_rng(seed)
    ids = 720575940600000000 + rng.choice(10**11, neurons, replace=False)
    pre = rng.choice(ids, rows)
    post = rng.choice(ids, rows)
    conns = pd.DataFrame({"pre_root_id": pre, "post_root_id": post,
                          "neuropil": rng.choice(NEUROPILS, rows),
                          "syn_count": rng.integers(5, 60, rows),
                          "nt_type": rng.choice(["ACH", "GABA", "GLUT", "DA", "SER"], rows)})
    conns = conns.drop_duplicates(["pre_root_id", "post_root_id", "neuropil"])
    codex = folder / "codex"
    codex.mkdir(parents=True, exist_ok=True)
    conns.to_csv(codex / "connections.csv.gz", index=False)
    pd.DataFrame({"root_id": ids, "group": "g", "nt_type": rng.choice(["ACH", "GABA"], neurons)}
                 ).to_csv(codex / "neurons.csv", index=False)
    pd.DataFrame({"root_id": ids, "super_class": "central",
                  "class": rng.choice(["ALPN", "KC", "LHN"], neurons),
                  "cell_type": [f"t{i % 8000}" for i in range(neurons)]}
                 ).to_csv(codex / "classification.csv", index=False)
    bulk = folder / "bulk"
    bulk.mkdir(exist_ok=True)
    pd.DataFrame({"bodyId": ids, "type": [f"t{i % 8000}" for i in range(neurons)],
                  "instance": [f"n{i}" for i in range(neurons)]}
                 ).to_csv(bulk / "traced-neurons.csv", index=False)
    roi = conns.rename(columns={"pre_root_id": "bodyId_pre", "post_root_id": "bodyId_post",
                                "neuropil": "roi", "syn_count": "weight"}).drop(columns="nt_type")
    roi.groupby(["bodyId_pre", "bodyId_post"], as_index=False)["weight"].sum().to_csv(
        bulk / "traced-total-connections.csv", index=False)
    roi.to_csv(bulk / "traced-roi-connections.csv", index=False)
    (folder / "done").write_text("")


def cached_files(neurons: int, rows: int, seed: int) -> tuple[Path, float]:
    folder = cache_dir() / "bench" / f"sources-{neurons}-{rows}-{seed}"
    if (folder / "done").exists():
        return folder, 0.0
    t = time.perf_counter()
    write_files(folder, neurons, rows, seed)
    return folder, time.perf_counter() - t


def check_graph(folder: Path, step: dict[str, Any], sample: Path) -> dict[str, Any]:
    """The loaded graph against pandas over the raw Codex connections (the bulk export holds the
    same rows): count, total weight, sampled ROI weights, a two-neuropil export."""
    raw = pd.read_csv(folder / "codex" / "connections.csv.gz",
                      usecols=["pre_root_id", "post_root_id", "neuropil", "syn_count"])
    raw.columns = ["pre", "post", "roi", "w"]
    pairs = raw.groupby(["pre", "post"])["w"].sum()
    got = pd.read_json(Path(f"{sample}.sample.json"))
    keys = set(zip(got["pre"], got["post"], strict=True))
    mine = raw[[k in keys for k in zip(raw["pre"], raw["post"], strict=True)]]
    want = {k: dict(zip(g["roi"], g["w"], strict=True)) for k, g in mine.groupby(["pre", "post"])}
    have = {(p, q): dict(zip(r, w, strict=True)) for p, q, r, w in
            zip(got["pre"], got["post"], got["rois"], got["roiWeights"], strict=True)}
    export = pd.read_parquet(f"{sample}.export.parquet")
    in_rois = raw[raw["roi"].isin(CHECK_ROIS)].groupby(["pre", "post"])["w"].sum()
    exported = export.set_index(["pre", "post"])["weight"].sort_index()
    return {"connections_match": int(step["graph_connections"]) == len(pairs),
            "weight_match": int(step["graph_weight"]) == int(pairs.sum()),
            "sampled": len(have), "sampled_roi_weights_match": have == want,
            "export_entries": len(exported),
            "export_matches": exported.to_dict() == in_rois.sort_index().to_dict()}


def report(results: dict[str, Any], rows: int) -> None:
    table = Table("source", "step", "s", "rows/s", "peak RSS MB", "time ratio vs ours",
                  "memory ratio vs ours")
    for name in [n for n in ("codex", "bulk") if n in results]:
        ours = results[name].get("ours", {})
        for label, step in results[name].items():
            if "seconds" not in step:
                table.add_row(name, label, "-", "-", f"{step.get('peak_rss_mb', 0):,.0f}",
                              step.get("failed", ""), "")
                continue
            table.add_row(name, label, f"{step['seconds']:.1f}",
                          f"{rows / step['seconds']:,.0f}", f"{step['peak_rss_mb']:,.0f}",
                          ratio(step["seconds"], ours["seconds"]) if "seconds" in ours else "",
                          ratio(step["peak_rss_mb"], ours["peak_rss_mb"]) if ours else "")
    console.print(table)
    for name in [n for n in ("codex", "bulk") if n in results]:
        step = results[name].get("offline load", {})
        if "admin_rels_per_s" in step:
            console.print(
                f"{name}: neo4j-admin import step: {step['admin_relationships']:,} relationships "
                f"in {step['admin_import_s']:.1f} s = {step['admin_rels_per_s']:,.0f} "
                f"relationships/s (budget >= {ADMIN_BUDGET:,}/s; load after "
                f"{step['load_avg_1m_after']})")
            stages = step.get("admin_stages_s", {})
            if "IMPORT DONE" in stages:
                console.print(
                    f"{name}: of which the importer's own run (its IMPORT DONE, no JVM start): "
                    f"{stages['IMPORT DONE']:.1f} s = {step['admin_tool_rels_per_s']:,.0f} "
                    "relationships/s; stages: " + ", ".join(
                        f"{k} {v:.1f} s" for k, v in stages.items() if k != "IMPORT DONE"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--neurons", type=int, default=139_255)
    p.add_argument("--rows", type=int, default=3_800_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--load", choices=["none", "offline", "online", "both"], default="none")
    p.add_argument("--skip", default="", help="comma list of: ours, before, pandas")
    p.add_argument("--sources", default="codex,bulk")
    p.add_argument("--baseline-commit", default="ef7958a",
                   help="the tree before streaming the fold ('0' to skip)")
    p.add_argument("--heap", default="2g")
    p.add_argument("--pagecache", default="2g")
    p.add_argument("--rss-cap-gb", type=float, default=10.0)
    p.add_argument("--json", default="bench/sources/results.json")
    a = p.parse_args()
    skip = set(a.skip.split(","))
    folder, generated = cached_files(a.neurons, a.rows, a.seed)
    results: dict[str, Any] = {"machine": machine(), "neurons": a.neurons, "rows": a.rows,
                               "generate_s": generated, "baseline_commit": a.baseline_commit}
    say = console.print
    with tempfile.TemporaryDirectory(prefix="bench-sources-") as tmp:
        old = (old_tree(a.baseline_commit, Path(tmp) / "old")
               if a.baseline_commit != "0" and "before" not in skip else None)
        for name in a.sources.split(","):
            src = str(folder / name)
            res: dict[str, Any] = {}
            results[name] = res
            if "ours" not in skip:
                res["ours"] = run_step(f"{name}: ours", OURS, [src, str(ROOT)], a.rss_cap_gb,
                                       say)
            if old is not None:
                res["before streaming"] = run_step(f"{name}: before streaming", OURS,
                                                   [src, str(old)], a.rss_cap_gb, say)
            if "pandas" not in skip:
                res["pandas"] = run_step(f"{name}: pandas", PANDAS, [src], a.rss_cap_gb, say)
            modes = {"none": [], "both": ["offline", "online"]}.get(a.load, [a.load])
            for mode in modes:
                sample = Path(tmp) / f"{name}-{mode}"
                step = run_step(f"{name}: {mode} load", LOAD,
                                [src, mode, f"{a.heap},{a.pagecache}", str(sample), str(ROOT),
                                 ",".join(CHECK_ROIS)], a.rss_cap_gb, say)
                if "seconds" in step:
                    step["check"] = check_graph(folder, step, sample)
                    say(step["check"])
                res[f"{mode} load"] = step
            Path(a.json).parent.mkdir(parents=True, exist_ok=True)
            Path(a.json).write_text(json.dumps(results, indent=2))
    report(results, a.rows)
    results["load_avg_1m_after"] = machine()["load_avg_1m"]
    Path(a.json).write_text(json.dumps(results, indent=2))
    console.print(f"load average (1 min): {results['machine']['load_avg_1m']} before, "
                  f"{results['load_avg_1m_after']} after; wrote {a.json}")


if __name__ == "__main__":
    main()
