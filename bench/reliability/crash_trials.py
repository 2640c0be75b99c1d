"""Many crash trials: kill -9 the ingest process, and kill -9 Neo4j, at random points mid-load.

    uv run python bench/reliability/crash_trials.py --ingest-trials 20 --neo4j-trials 5

Runs on its own LocalNeo4j (temp dir, free port; never the shared server). Each trial kills at
a random moment of the write phase (strata over the clean load's write time), reruns the ingest,
and compares the graph with the generator's networkx copy: node/relationship counts, duplicates,
and a sha256 over every edge and weight. Baseline: a clean load timed in the same run.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import neo4j

from connectome_query.graphdb.local_server import LocalNeo4j
from connectome_query.graphdb.settings import LocalServerConfig, cache_dir
from tests.reliability.datagen import expected_fingerprint, write_neuprint
from tests.reliability.trials import (
    TrialResult,
    free_port,
    kill_ingest_trial,
    kill_neo4j_trial,
    kill_points,
    timed_clean_ingest,
)


def summarise(kind: str, results: list[TrialResult]) -> dict[str, object]:
    return {
        "kind": kind, "trials": len(results),
        "killed_mid_load": sum(r.status_after_kill == "loading" for r in results),
        "data_lost": sum(r.lost for r in results),
        "duplicates_or_leftovers": sum(r.extra for r in results),
        "failed": sum(not r.ok for r in results),
        "ingest_exited_with_clear_message": sum(bool(r.ingest_message_clear) for r in results),
        "problems": [p for r in results for p in r.problems][:10],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ingest-trials", type=int, default=20)
    ap.add_argument("--neo4j-trials", type=int, default=5)
    ap.add_argument("--neurons", type=int, default=2000)
    ap.add_argument("--edges", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    dataset = "t_crash_bench"

    with tempfile.TemporaryDirectory(prefix="connectome-crash-") as tmp:
        folder = Path(tmp) / "data"
        g = write_neuprint(folder, neurons=args.neurons, edges=args.edges,
                           gap=args.edges // 10, seed=args.seed)
        expected = expected_fingerprint(g)
        servers = [LocalNeo4j(LocalServerConfig(
            home=Path(tmp) / "neo4j", cache=cache_dir(), bolt_port=free_port(), heap="1g",
            pagecache="512m"))]
        target = servers[0].start(timeout=300)
        summary: dict[str, object] = {"expected": expected}
        try:
            with neo4j.GraphDatabase.driver(target.uri,
                                            auth=(target.user, target.password)) as driver:
                total, writing = timed_clean_ingest(driver, target, folder, dataset, args.batch)
                print(f"clean load (baseline): {total:.1f} s, {writing:.1f} s writing")
                summary["clean_load_s"] = total
                results = []
                for i, after in enumerate(kill_points(rng, args.ingest_trials, 0.0, 1.0)):
                    if i % 2 == 0:
                        driver.execute_query("MATCH (n {dataset: $d}) DETACH DELETE n",
                                             d=dataset)
                    t0 = time.monotonic()
                    r = kill_ingest_trial(driver, target, folder, dataset, expected, after,
                                          args.batch)
                    results.append(r)
                    print(f"ingest trial {i + 1}: kill at {after:.0%} written "
                          f"status={r.status_after_kill} ok={r.ok} lost={r.lost} "
                          f"extra={r.extra} ({time.monotonic() - t0:.0f} s)", flush=True)
                summary["kill_ingest"] = summarise("kill -9 ingest", results)
            results = []
            for i, after in enumerate(kill_points(rng, args.neo4j_trials, 0.05, 0.95)):
                t0 = time.monotonic()
                r, restarted = kill_neo4j_trial(servers[-1], folder, dataset, expected, after,
                                                args.batch)
                servers.append(restarted)
                results.append(r)
                print(f"neo4j trial {i + 1}: kill at {after:.0%} written "
                      f"status={r.status_after_kill} ok={r.ok} lost={r.lost} "
                      f"extra={r.extra} ({time.monotonic() - t0:.0f} s)", flush=True)
            summary["kill_neo4j"] = summarise("kill -9 neo4j", results)
        finally:
            servers[-1].stop()
    text = json.dumps(summary, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text)
    failed = [s for k, s in summary.items() if k.startswith("kill_")
              and isinstance(s, dict) and s["failed"]]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
