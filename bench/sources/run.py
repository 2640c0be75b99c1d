"""Codex downloads and neuPrint bulk exports at FlyWire scale: our checked read vs pandas.

    uv run python bench/sources/run.py                              # 139k neurons, 3.8M rows
    uv run python bench/sources/run.py --neurons 20000 --rows 400000 --load

In one run, on synthetic files shaped like a FlyWire Codex download (`connections.csv.gz`, one
row per (pre, post, neuropil), `neurons.csv`, `classification.csv`) and a neuPrint bulk export
(`traced-*.csv`) of the same connections:
1. ours: `open_source` + `prepare` (every value checked, neuropil/ROI rows folded into
   connections with their ROI weights, neuron tables joined): rows/s;
2. baseline: pandas `read_csv` of the same files + `groupby(pre, post).sum()` (no checks, no
   ROI weights): rows/s;
3. with --load, the loader into a fresh private Neo4j: connections/s end to end.
Figures are printed with their ratios and written to --json with the machine and load average.
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

import neo4j
import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from bench.common import machine, private_server, ratio
from connectome_query.ingest.loader import load
from connectome_query.ingest.prepare import prepare
from connectome_query.ingest.sources import open_source

console = Console()
NEUROPILS = [f"NP{i:02d}_{side}" for i in range(40) for side in "LR"]


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
    codex.mkdir(parents=True)
    conns.to_csv(codex / "connections.csv.gz", index=False)
    pd.DataFrame({"root_id": ids, "group": "g", "nt_type": rng.choice(["ACH", "GABA"], neurons)}
                 ).to_csv(codex / "neurons.csv", index=False)
    pd.DataFrame({"root_id": ids, "super_class": "central",
                  "class": rng.choice(["ALPN", "KC", "LHN"], neurons),
                  "cell_type": [f"t{i % 8000}" for i in range(neurons)]}
                 ).to_csv(codex / "classification.csv", index=False)
    bulk = folder / "bulk"
    bulk.mkdir()
    pd.DataFrame({"bodyId": ids, "type": [f"t{i % 8000}" for i in range(neurons)],
                  "instance": [f"n{i}" for i in range(neurons)]}
                 ).to_csv(bulk / "traced-neurons.csv", index=False)
    roi = conns.rename(columns={"pre_root_id": "bodyId_pre", "post_root_id": "bodyId_post",
                                "neuropil": "roi", "syn_count": "weight"}).drop(columns="nt_type")
    roi.groupby(["bodyId_pre", "bodyId_post"], as_index=False)["weight"].sum().to_csv(
        bulk / "traced-total-connections.csv", index=False)
    roi.to_csv(bulk / "traced-roi-connections.csv", index=False)


def ours(folder: Path) -> tuple[float, int]:
    t = time.perf_counter()
    prep = prepare(open_source(str(folder)))
    seconds = time.perf_counter() - t
    pairs = prep.chemical_connections
    prep.close()
    return seconds, pairs


def baseline_codex(folder: Path) -> float:
    t = time.perf_counter()
    conns = pd.read_csv(folder / "connections.csv.gz")
    pd.read_csv(folder / "neurons.csv").merge(pd.read_csv(folder / "classification.csv"),
                                              on="root_id")
    conns.groupby(["pre_root_id", "post_root_id"])["syn_count"].sum()
    return time.perf_counter() - t


def baseline_bulk(folder: Path) -> float:
    t = time.perf_counter()
    pd.read_csv(folder / "traced-neurons.csv")
    total = pd.read_csv(folder / "traced-total-connections.csv")
    roi = pd.read_csv(folder / "traced-roi-connections.csv")
    total.merge(roi.groupby(["bodyId_pre", "bodyId_post"], as_index=False)["weight"].sum(),
                on=["bodyId_pre", "bodyId_post"], how="left")
    return time.perf_counter() - t


def load_rate(folder: Path, heap: str, pagecache: str) -> float:
    with private_server(heap, pagecache) as server:
        server.start()
        t = server.target()
        with neo4j.GraphDatabase.driver(t.uri, auth=(t.user, t.password)) as drv:
            report = load(drv, open_source(str(folder)), "bench_codex")
    return report.chemical_connections / report.seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--neurons", type=int, default=139_255)
    p.add_argument("--rows", type=int, default=3_800_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--load", action="store_true", help="also load the Codex folder into Neo4j")
    p.add_argument("--heap", default="2g")
    p.add_argument("--pagecache", default="2g")
    p.add_argument("--json", default="bench/sources/results.json")
    a = p.parse_args()
    results: dict[str, Any] = {"machine": machine(), "neurons": a.neurons, "rows": a.rows}
    with tempfile.TemporaryDirectory(prefix="bench-sources-") as tmp:
        folder = Path(tmp)
        t = time.perf_counter()
        write_files(folder, a.neurons, a.rows, a.seed)
        results["generate_s"] = time.perf_counter() - t
        table = Table("source", "ours s", "pandas s", "rows/s ours", "ratio (pandas/ours)")
        for name, base in (("codex", baseline_codex), ("bulk", baseline_bulk)):
            seconds, pairs = ours(folder / name)
            base_s = base(folder / name)
            results[name] = {"ours_s": seconds, "pandas_s": base_s, "pairs": pairs,
                             "ratio": base_s / seconds}
            table.add_row(name, f"{seconds:.1f}", f"{base_s:.1f}", f"{a.rows / seconds:,.0f}",
                          ratio(base_s, seconds))
        console.print(table)
        if a.load:
            rate = load_rate(folder / "codex", a.heap, a.pagecache)
            results["codex_load_connections_per_s"] = rate
            console.print(f"codex load into Neo4j: {rate:,.0f} connections/s")
    results["load_avg_1m_after"] = machine()["load_avg_1m"]
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(results, indent=2))
    console.print(f"load average (1 min): {results['machine']['load_avg_1m']} before, "
                  f"{results['load_avg_1m_after']} after; wrote {a.json}")


if __name__ == "__main__":
    main()
