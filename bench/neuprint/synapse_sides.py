"""What neuPrint's postsynaptic side of every synapse costs a version of a synapse dataset:
store growth and load time, beside the same version without it, same run, same server.

    uv run python bench/neuprint/synapse_sides.py --synapses 200000

Generates a synthetic connectome with a CAVE synapse table (`bench.common.synth_dataset`) and
loads it into a private Neo4j three times with the project's loader: twice with the sides pass
(`graphdb.dataset_scope.add_synapse_sides`) switched off, the baseline (the second load's store
growth is what a version cost without it), then once as the loader runs now. Store sizes are
the files under `data/databases/neo4j` with the server stopped. Prints the growth per version
of each, their ratio, and the sides pass's time beside the whole load; writes JSON with the
load average.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.common import machine, private_server, synth_dataset  # noqa: E402

DATASET = "bench_sides"


def _store_bytes(store: Path) -> int:
    return sum(f.stat().st_size for f in store.rglob("*") if f.is_file())


def _load(server: Any, folder: Path, sides: bool) -> dict[str, float]:
    """One load (sides on or off); its seconds, the sides pass's seconds, the store after."""
    import neo4j

    from connectome_query.graphdb import dataset_scope
    from connectome_query.ingest.loader import load
    from connectome_query.ingest.readers.synapse_table import read_synapse_table

    real = dataset_scope.add_synapse_sides
    spent = [0.0]

    def timed_sides(*args: Any, **kwargs: Any) -> None:
        t = time.perf_counter()
        if sides:
            real(*args, **kwargs)
        spent[0] += time.perf_counter() - t

    target = server.start(timeout=300)
    tables = read_synapse_table(folder / "synapses.parquet",
                                neurons_path=folder / "neurons.parquet")
    dataset_scope.add_synapse_sides = timed_sides  # type: ignore[assignment]
    try:
        with neo4j.GraphDatabase.driver(target.uri, auth=(target.user, target.password),
                                        notifications_min_severity="OFF") as drv:
            t = time.perf_counter()
            load(drv, tables, DATASET)
            load_s = time.perf_counter() - t
    finally:
        dataset_scope.add_synapse_sides = real  # type: ignore[assignment]
    server.stop()  # the store's files are whole once the server is down
    store = server.home / "data" / "databases" / "neo4j"
    return {"load_s": load_s, "sides_s": spent[0], "store_bytes": _store_bytes(store)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--synapses", type=int, default=200_000)
    p.add_argument("--neurons", type=int, default=2_000)
    p.add_argument("--edges", type=int, default=40_000)
    p.add_argument("--heap", default="1g")
    p.add_argument("--pagecache", default="512m")
    p.add_argument("--json", type=Path, default=ROOT / "bench/neuprint/sides.json")
    a = p.parse_args()

    folder, _ = synth_dataset(a.neurons, a.edges, seed=5, synapses=a.synapses)
    with private_server(a.heap, a.pagecache) as server:
        first = _load(server, folder, sides=False)
        without = _load(server, folder, sides=False)
        with_sides = _load(server, folder, sides=True)
    grow_without = without["store_bytes"] - first["store_bytes"]
    grow_with = with_sides["store_bytes"] - without["store_bytes"]
    ratio = grow_with / grow_without if grow_without else float("nan")
    print(f"{a.synapses:,} synapses: a version adds {grow_without / 2**20:.1f} MiB without the "
          f"postsynaptic side, {grow_with / 2**20:.1f} MiB with it ({ratio:.2f}x); load "
          f"{without['load_s']:.1f} s without, {with_sides['load_s']:.1f} s with (the sides "
          f"pass {with_sides['sides_s']:.1f} s)", flush=True)
    load1 = os.getloadavg()[0]
    print(f"load average (1 min): {load1:.2f}")
    a.json.write_text(json.dumps({
        "synapses": a.synapses, "neurons": a.neurons, "edges": a.edges,
        "without_sides": without, "with_sides": with_sides,
        "store_bytes_per_version_without": grow_without,
        "store_bytes_per_version_with": grow_with, "ratio": ratio,
        "loadavg_1m": load1, "machine": machine()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
