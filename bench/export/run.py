"""Full-matrix export at FlyWire-like scale: our streamed export vs. a naive SKIP/LIMIT client.

    uv run python bench/export/run.py                      # 139,255 neurons, 3.7M edges
    uv run python bench/export/run.py --neurons 20000 --edges 300000   # a quick look

What it does, all in one run:
1. draws a heavy-tailed connectome with `ingest.synth_connectome.generate` (issue 8's
   generator) and keeps a second dataset with a quarter of its edges (same neurons), to show
   how memory grows with the matrix;
2. bulk-imports both into a fresh, private Neo4j 5.26 (`neo4j-admin database import full`, the
   same labels/properties the loader writes; the loader itself would take far longer on 2
   cores), then adds the schema's constraints and indexes and the Meta nodes;
3. runs each export in its own subprocess and reports wall time and peak RSS (sampled every
   5 ms in that process; the driver, pandas and pyarrow included):
   - ours: `export.matrix.prepare` + `write` (keyset pages of neurons, one read
     transaction each, Arrow batches written as they arrive) to Parquet and to NPZ;
   - http: the same Parquet export through the API (uvicorn in that process, httpx
     streaming the response to a file; the RSS counts server and client together);
   - naive: what clients do today: `MATCH ... RETURN pre, post, weight SKIP $s LIMIT $n` in
     pages of 200,000 rows (CAVE's cap is 200k), each page `to_df()`, then `pd.concat` and
     `to_parquet`;
4. checks that both Parquet files hold the same matrix, and prints times, memory and ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.common import free_port  # noqa: E402

NAIVE_PAGE = 200_000
NAIVE_QUERY = """
MATCH (a:Neuron {dataset: $dataset})-[c:ConnectsTo]->(b:Neuron)
RETURN a.bodyId AS bodyId_pre, b.bodyId AS bodyId_post, c.weight AS weight
SKIP $skip LIMIT $limit
"""


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


class PeakSampler:
    """Peak RSS of this process, sampled every 5 ms in a thread (ru_maxrss is inherited from
    the parent across exec on Linux, so it cannot be used in a subprocess)."""

    def __init__(self) -> None:
        import threading

        self.peak = rss_mb()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import psutil

        proc = psutil.Process()
        while not self.stop.wait(0.005):
            self.peak = max(self.peak, proc.memory_info().rss / 2**20)

    def done(self) -> float:
        self.stop.set()
        self.thread.join()
        return max(self.peak, rss_mb())


# -- workers (run in subprocesses) ---------------------------------------------------------------
def worker(args: argparse.Namespace) -> None:
    import neo4j

    from connectome_query.export.matrix import prepare, write
    from connectome_query.export.request import ExportLimits, MatrixRequest

    target = json.loads(os.environ["BENCH_TARGET"])
    driver = neo4j.GraphDatabase.driver(target["uri"], auth=(target["user"], target["password"]))
    driver.verify_connectivity()
    base = rss_mb()
    sampler = PeakSampler()
    t0 = time.perf_counter()
    out = Path(args.out)
    if args.mode == "http":
        entries = http_download(target, args.dataset, args.format, out)
    elif args.mode == "ours":
        plan = prepare(driver, MatrixRequest(dataset=args.dataset, format=args.format),
                       limits=ExportLimits(max_edges=10**9))
        with out.open("wb") as fh:
            stats = write(driver, plan, fh)
        entries = stats.entries
    else:
        frames = []
        skip = 0
        while True:
            df = driver.execute_query(NAIVE_QUERY, dataset=args.dataset, skip=skip,
                                      limit=NAIVE_PAGE, routing_=neo4j.RoutingControl.READ,
                                      result_transformer_=neo4j.Result.to_df)
            frames.append(df)
            skip += len(df)
            if len(df) < NAIVE_PAGE:
                break
        table = pd.concat(frames, ignore_index=True)
        table.to_parquet(out, index=False)
        entries = len(table)
    seconds = time.perf_counter() - t0
    peak = sampler.done()
    driver.close()
    print(json.dumps({"seconds": seconds, "peak_mb": peak, "base_mb": base,
                      "entries": entries, "bytes": out.stat().st_size}))


def http_download(target: dict[str, str], dataset: str, fmt: str, out: Path) -> int:
    """The same export through the API: uvicorn in a thread, httpx streaming to a file."""
    import threading

    import httpx
    import pyarrow.parquet as pq
    import uvicorn

    from connectome_query.graphdb.settings import Neo4jTarget
    from connectome_query.graphql_api.app import create_app

    os.environ["CONNECTOME_EXPORT_MAX_EDGES"] = str(10**9)
    app = create_app(Neo4jTarget(target["uri"], target["user"], target["password"]))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        with httpx.stream("GET", f"http://127.0.0.1:{port}/export/matrix",
                          params={"dataset": dataset, "format": fmt},
                          timeout=httpx.Timeout(30.0, read=600.0)) as r, out.open("wb") as fh:
            r.raise_for_status()
            for block in r.iter_bytes(1 << 20):
                fh.write(block)
    finally:
        server.should_exit = True
        thread.join(10)
    return int(pq.ParquetFile(out).metadata.num_rows)


def run_worker(target: dict[str, str], mode: str, dataset: str, fmt: str, out: Path,
               ) -> dict[str, Any]:
    env = {**os.environ, "BENCH_TARGET": json.dumps(target)}
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", mode, "--dataset", dataset, "--format", fmt,
         "--out", str(out)], capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{mode} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- data ----------------------------------------------------------------------------------------
def write_import_files(folder: Path, g: Any, datasets: dict[str, np.ndarray]) -> list[str]:
    """neo4j-admin CSVs: one node file and one relationship file per dataset."""
    from connectome_query.ingest.synth_connectome import NEUROTRANSMITTERS, ROIS, STATUSES

    names = np.array(g.type_names, dtype=object)
    args = []
    for dataset, keep in datasets.items():
        pre, post, w = g.pre[keep], g.post[keep], g.weight[keep].astype(np.int64)
        n = len(g.body_ids)
        out_w = np.bincount(pre, weights=w, minlength=n).astype(np.int64)
        in_w = np.bincount(post, weights=w, minlength=n).astype(np.int64)
        nodes = pa.table({
            ":ID(N)": pa.array([f"{dataset}:{b}" for b in g.body_ids.tolist()]),
            "bodyId:long": pa.array(g.body_ids, pa.int64()),
            "dataset": pa.array([dataset] * n),
            "type": pa.array(names[g.neuron_type], pa.string()),
            "instance": pa.array(names[g.neuron_type] + "_" + np.array(["L", "R"],
                                                                       dtype=object)[g.side]),
            "status": pa.array(np.array(STATUSES, dtype=object)[g.status]),
            "neurotransmitter": pa.array(np.array(NEUROTRANSMITTERS, dtype=object)[
                g.type_nt[g.neuron_type]]),
            "pre:long": pa.array(out_w), "post:long": pa.array(in_w),
            "upstream:long": pa.array(np.bincount(post, minlength=n)),
            "downstream:long": pa.array(np.bincount(pre, minlength=n)),
            "gapJunctions:long": pa.array(np.zeros(n, dtype=np.int64)),
            ":LABEL": pa.array(["Segment;Neuron"] * n),
        })
        node_file = folder / f"{dataset}_nodes.csv"
        pacsv.write_csv(nodes, node_file)
        ids = np.array([f"{dataset}:{b}" for b in g.body_ids.tolist()], dtype=object)
        rois = np.array(ROIS, dtype=object)
        ra, rb, ca = g.roi_a[keep], g.roi_b[keep], g.count_a[keep]
        same = (ra == rb) | (ca == w) | (ca == 0)
        only = np.where(ca == 0, rb, ra)
        roi_text = np.where(same, rois[only], rois[ra] + ";" + rois[rb])
        roi_w = np.where(same, w.astype(str), ca.astype(str).astype(object) + ";"
                         + (w - ca).astype(str).astype(object))
        rels = pa.table({
            ":START_ID(N)": pa.array(ids[pre]), ":END_ID(N)": pa.array(ids[post]),
            ":TYPE": pa.array(["ConnectsTo"] * len(pre)),
            "weight:long": pa.array(w), "dataset": pa.array([dataset] * len(pre)),
            "rois:string[]": pa.array(roi_text.astype(str)),
            "roiWeights:long[]": pa.array(roi_w.astype(str)),
        })
        rel_file = folder / f"{dataset}_rels.csv"
        pacsv.write_csv(rels, rel_file, write_options=pacsv.WriteOptions(quoting_style="none"))
        args += [f"--nodes={node_file}", f"--relationships={rel_file}"]
    return args



def start_server(home: Path, import_args: list[str], heap: str) -> Any:
    from connectome_query.graphdb.local_server import LocalNeo4j
    from connectome_query.graphdb.settings import LocalServerConfig, cache_dir

    server = LocalNeo4j(LocalServerConfig(home=home, cache=cache_dir(), bolt_port=free_port(),
                                          heap=heap, pagecache="2g"))
    server.fetch()
    server.write_config()
    t0 = time.perf_counter()
    proc = server.admin("database", "import", "full", "--overwrite-destination",
                        "--array-delimiter=;", f"--report-file={home / 'import.report'}",
                        *import_args, heap="2g")
    if proc.returncode != 0:
        raise SystemExit(f"neo4j-admin import failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    print(f"  imported in {time.perf_counter() - t0:.0f} s", flush=True)
    server.start(timeout=300)
    return server


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--neurons", type=int, default=139_255)
    p.add_argument("--edges", type=int, default=3_700_000)
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--heap", default="3g", help="Neo4j heap of the private bench server")
    p.add_argument("--workdir", type=Path, default=None,
                   help="keep data, store and outputs here (default: a temporary folder, removed)")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--worker", choices=["ours", "naive", "http"], help=argparse.SUPPRESS)
    p.add_argument("--dataset", help=argparse.SUPPRESS)
    p.add_argument("--format", default="parquet", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        args.mode = args.worker
        worker(args)
        return

    import neo4j

    from connectome_query.ingest.synth_connectome import generate
    from connectome_query.schema.migrate import apply_migrations

    work = args.workdir or Path(tempfile.mkdtemp(prefix="export-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"bench/export: {args.neurons:,} neurons, {args.edges:,} edges (work dir {work})",
          flush=True)
    t0 = time.perf_counter()
    g = generate(args.neurons, args.edges, seed=args.seed)
    m = len(g.pre)
    quarter = np.zeros(m, dtype=bool)
    quarter[::4] = True
    datasets = {"bench_full": np.ones(m, dtype=bool), "bench_quarter": quarter}
    import_args = write_import_files(work, g, datasets)
    print(f"  generated {m:,} edges in {time.perf_counter() - t0:.0f} s", flush=True)
    server = start_server(work / "neo4j", import_args, args.heap)
    try:
        target = server.target()
        with neo4j.GraphDatabase.driver(target.uri, auth=(target.user, target.password),
                                        notifications_min_severity="OFF") as drv:
            apply_migrations(drv)
            drv.execute_query("CALL db.awaitIndexes(600)")
            for name, keep in datasets.items():
                drv.execute_query(
                    "MERGE (m:Meta {dataset: $d}) SET m.neuronCount = $n, "
                    "m.chemicalConnections = $c, m.chemicalSynapses = $s, "
                    "m.electricalConnections = 0, m.gapJunctions = 0, m.status = 'complete'",
                    d=name, n=len(g.body_ids), c=int(keep.sum()),
                    s=int(g.weight[keep].sum()))
            # warm the page cache once so the first timed run is not penalised
            drv.execute_query("MATCH ()-[c:ConnectsTo]->() RETURN sum(c.weight)")
        t = {"uri": target.uri, "user": target.user, "password": target.password}
        runs = [("ours", "bench_quarter", "parquet"), ("naive", "bench_quarter", "parquet"),
                ("ours", "bench_full", "parquet"), ("ours", "bench_full", "npz"),
                ("http", "bench_full", "parquet"), ("naive", "bench_full", "parquet")]
        results: dict[tuple[str, str, str], dict[str, Any]] = {}
        for mode, dataset, fmt in runs:
            out = work / f"{mode}_{dataset}.{fmt}"
            r = run_worker(t, mode, dataset, fmt, out)
            results[(mode, dataset, fmt)] = r
            print(f"  {mode:5s} {dataset:13s} {fmt:7s} {r['entries']:>10,} entries "
                  f"{r['seconds']:7.1f} s  peak RSS {r['peak_mb']:7.0f} MB "
                  f"(+{r['peak_mb'] - r['base_mb']:.0f} MB over idle)", flush=True)
        for dataset in datasets:
            a = pd.read_parquet(work / f"ours_{dataset}.parquet")
            b = pd.read_parquet(work / f"naive_{dataset}.parquet")
            key = ["bodyId_pre", "bodyId_post"]
            same = a.sort_values(key, ignore_index=True).equals(
                b.sort_values(key, ignore_index=True)[a.columns])
            print(f"  {dataset}: ours == naive: {same}")
            if not same:
                raise SystemExit("the two exports differ")
        print("\nsummary")
        for dataset in datasets:
            o, n = results[("ours", dataset, "parquet")], results[("naive", dataset, "parquet")]
            print(f"  {dataset}: naive/ours time {n['seconds'] / o['seconds']:.1f}x, "
                  f"naive/ours peak RSS {n['peak_mb'] / o['peak_mb']:.1f}x "
                  f"({n['peak_mb']:.0f} vs {o['peak_mb']:.0f} MB)")
        h, n = results[("http", "bench_full", "parquet")], results[("naive", "bench_full",
                                                                       "parquet")]
        print(f"  bench_full through the API (uvicorn + httpx): naive/http time "
              f"{n['seconds'] / h['seconds']:.1f}x")
        q, f = results[("ours", "bench_quarter", "parquet")], results[("ours", "bench_full",
                                                                      "parquet")]
        nq, nf = results[("naive", "bench_quarter", "parquet")], results[("naive", "bench_full",
                                                                        "parquet")]
        if args.json:
            args.json.write_text(json.dumps({
                "neurons": len(g.body_ids), "edges": m,
                "runs": [{"mode": k[0], "dataset": k[1], "format": k[2], **v}
                         for k, v in results.items()]}, indent=2) + "\n")
        print(f"  4x the edges: ours peak RSS {q['peak_mb']:.0f} -> {f['peak_mb']:.0f} MB, "
              f"naive {nq['peak_mb']:.0f} -> {nf['peak_mb']:.0f} MB")
    finally:
        server.stop()
        if args.workdir is None:  # a temporary folder: the store is gigabytes at full scale
            import shutil

            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
