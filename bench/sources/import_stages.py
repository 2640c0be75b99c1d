"""What the relationship properties cost neo4j-admin: the same import files imported again with
the ROI properties ignored (`:IGNORE` in the header), each run's own stages printed.

    uv run python bench/sources/import_stages.py --neurons 20000 --rows 400000 --repeat 2

The Codex folder of `bench/sources/run.py` (generated there, cached by size and seed) is checked
and written as import files once; then neo4j-admin runs on them with all properties, without
`roiInfo`, and without `roiInfo`/`rois`/`roiWeights`, alternating, `--repeat` times. Prints each
run's wall time, the importer's own time (IMPORT DONE) and its stages, and the load average.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.common import private_server
from bench.sources.run import cached_files
from connectome_query.ingest.bulk_import import ImportTimings, _admin_import, write_import_files
from connectome_query.ingest.prepare import prepare
from connectome_query.ingest.sources import open_source


def variants(header: str) -> dict[str, str]:
    no_info = header.replace("roiInfo:string", ":IGNORE")
    return {"all properties": header, "no roiInfo": no_info,
            "no ROI properties": no_info.replace("rois:string[]", ":IGNORE").replace(
                "roiWeights:long[]", ":IGNORE")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--neurons", type=int, default=20_000)
    p.add_argument("--rows", type=int, default=400_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--heap", default="1g")
    a = p.parse_args()
    folder, _ = cached_files(a.neurons, a.rows, a.seed)
    with private_server(a.heap, "512m") as server, tempfile.TemporaryDirectory() as tmp:
        prep = prepare(open_source(str(folder / "codex")))
        try:
            nodes, rels = write_import_files(Path(tmp), prep, "bench__v1")
            n_rels = prep.chemical_connections
        finally:
            prep.close()
        header = Path(rels[0].split(",")[0])
        headers = variants(header.read_text())
        server.fetch()
        server.write_config()
        for _ in range(a.repeat):
            for name, text in headers.items():
                header.write_text(text)
                load = os.getloadavg()[0]
                t = time.perf_counter()
                out = _admin_import(server, nodes, rels, a.heap)
                wall = time.perf_counter() - t
                stages = ImportTimings(0, 0, 0, wall, admin_output=out).admin_stages()
                own = stages.pop("IMPORT DONE", float("nan"))
                print(f"{name}: {n_rels:,} relationships, step {wall:.1f} s "
                      f"({n_rels / wall:,.0f}/s), importer's own run {own:.1f} s "
                      f"({n_rels / own:,.0f}/s); " +
                      ", ".join(f"{k} {v:.1f} s" for k, v in stages.items()) +
                      f"; load {load:.1f} -> {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
