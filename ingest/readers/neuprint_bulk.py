"""neuPrint's bulk adjacency export (the hemibrain "exported-traced-adjacencies" folder, or
neuprint-python's `fetch_adjacencies(..., export_dir=...)`), CSV or gzipped CSV:

- `traced-neurons.csv`: `bodyId`, `type`, `instance` (and any column `neuprint` neurons files
  have: `status`, `cellClass`, `predictedNt`, soma ...);
- `traced-total-connections.csv`: `bodyId_pre`, `bodyId_post`, `weight`, one row per pair;
- `traced-roi-connections.csv` (optional): `bodyId_pre`, `bodyId_post`, `roi`, `weight`, one
  row per (pair, ROI): the pair's ROI weights (`roiInfo`, `rois`, `roiWeights`).

A pair in the ROI file must be in the totals, and its ROI weights cannot add up to more than
its total (they add up to less where synapses lie outside every ROI).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from connectome_query.graphdb.settings import IngestSettings, from_env
from connectome_query.ingest.errors import IngestError
from connectome_query.ingest.readers.files import open_table
from connectome_query.ingest.readers.neuprint import neuron_stream
from connectome_query.ingest.readers.roi_rows import TableStream, by_pair, gather
from connectome_query.ingest.tables import Source

NEURONS = "traced-neurons"
TOTALS = "traced-total-connections"
ROIS = "traced-roi-connections"


def _find(folder: Path, stem: str) -> Path | None:
    for suffix in (".csv", ".csv.gz"):
        if (folder / f"{stem}{suffix}").exists():
            return folder / f"{stem}{suffix}"
    return None


def is_bulk_export(folder: Path) -> bool:
    return _find(folder, NEURONS) is not None and _find(folder, TOTALS) is not None


def _totals(path: Path, encoding: str) -> pa.Table:
    """The total-connections file, checked: bodyIdPre, bodyIdPost, weight, row."""
    file = open_table(path, encoding=encoding)
    file.require("bodyId_pre", "bodyId_post", "weight")
    parts = []
    for chunk in file.chunks(["bodyId_pre", "bodyId_post", "weight"],
                             from_env(IngestSettings).chunk_rows):
        parts.append(pa.table({
            "bodyIdPre": chunk.integers("bodyId_pre"), "bodyIdPost": chunk.integers("bodyId_post"),
            "weight": chunk.integers("weight", ids=False),
            "row": np.arange(chunk.first_row, chunk.first_row + chunk.n, dtype=np.int64)}))
    return pa.concat_tables(parts)


def _with_rois(totals: pa.Table, rois_path: Path | None, encoding: str,
               totals_name: str) -> pa.Table:
    """The totals with each pair's ROI weights (null where the ROI file has none)."""
    n = totals.num_rows
    if rois_path is None:
        return totals.append_column("kind", pa.array(["chemical"] * n)).append_column(
            "roiInfo", pa.nulls(n, pa.string())).append_column(
            "rois", pa.nulls(n, pa.list_(pa.string()))).append_column(
            "roiWeights", pa.nulls(n, pa.list_(pa.int64())))
    file = open_table(rois_path, encoding=encoding)
    file.require("bodyId_pre", "bodyId_post", "roi", "weight")
    grouped = by_pair(gather(file, "bodyId_pre", "bodyId_post", "roi", "weight"), "roi",
                      "bodyId_pre")
    keys = pa.table({"bodyIdPre": grouped.column("bodyIdPre"),
                     "bodyIdPost": grouped.column("bodyIdPost"),
                     "roiSum": grouped.column("weight"), "roiRow": grouped.column("row"),
                     "at": np.arange(grouped.num_rows, dtype=np.int64)})
    joined = totals.join(keys, ["bodyIdPre", "bodyIdPost"], join_type="full outer",
                         use_threads=False)
    missing = joined.filter(joined.column("row").is_null())
    if missing.num_rows:
        at = int(np.min(missing.column("roiRow").to_numpy()))
        raise IngestError(file.name, f"this pair is not in {Path(totals_name).name}", row=at,
                          column="bodyId_pre")
    joined = joined.sort_by("row")
    total = joined.column("weight").to_numpy()
    sums = joined.column("roiSum").fill_null(0).to_numpy()
    over = np.flatnonzero(sums > total)
    if len(over):
        i = int(over[0])
        raise IngestError(totals_name, f"ROI weights of this pair add up to {sums[i]}, more "
                          f"than its weight {total[i]}", row=int(joined.column("row")[i].as_py()),
                          column="weight")
    at = joined.column("at")
    for name in ("roiInfo", "rois", "roiWeights"):
        joined = joined.append_column(name, grouped.column(name).take(at))
    return joined.append_column("kind", pa.array(["chemical"] * joined.num_rows))


def bulk_export_source(folder: Path, *, encoding: str = "utf-8") -> Source:
    """A neuPrint bulk export folder as a source."""
    neurons = _find(folder, NEURONS)
    totals = _find(folder, TOTALS)
    if neurons is None or totals is None:
        raise IngestError(folder, f"expected {NEURONS}.csv and {TOTALS}.csv")
    table = _with_rois(_totals(totals, encoding), _find(folder, ROIS), encoding, str(totals))
    names = {"bodyIdPre": "bodyId_pre", "bodyIdPost": "bodyId_post", "weight": "weight"}
    return Source(
        name=str(folder), neurons=neuron_stream(neurons, encoding=encoding),
        connections=TableStream(str(totals), table, names),
        meta={"description": f"neuPrint bulk adjacency export ({folder.name})",
              "roiKind": "neuPrint ROI"})
