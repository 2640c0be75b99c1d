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

from connectome_query.graphdb.settings import IngestSettings, from_env
from connectome_query.ingest.errors import IngestError
from connectome_query.ingest.readers.files import open_table
from connectome_query.ingest.readers.neuprint import neuron_stream
from connectome_query.ingest.readers.roi_rows import RoiFold
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


def bulk_export_source(folder: Path, *, encoding: str = "utf-8") -> Source:
    """A neuPrint bulk export folder as a source."""
    neurons = _find(folder, NEURONS)
    totals = _find(folder, TOTALS)
    if neurons is None or totals is None:
        raise IngestError(folder, f"expected {NEURONS}.csv and {TOTALS}.csv")
    chunk_rows = from_env(IngestSettings).chunk_rows
    names = {"bodyIdPre": "bodyId_pre", "bodyIdPost": "bodyId_post", "weight": "weight"}
    fold = RoiFold()
    try:
        total_file = open_table(totals, encoding=encoding)
        total_file.require("bodyId_pre", "bodyId_post", "weight")
        fold.add_totals(total_file, "bodyId_pre", "bodyId_post", "weight", chunk_rows)
        rois = _find(folder, ROIS)
        roi_name = str(totals)
        if rois is not None:
            roi_file = open_table(rois, encoding=encoding)
            roi_file.require("bodyId_pre", "bodyId_post", "roi", "weight")
            fold.add_rois(roi_file, "bodyId_pre", "bodyId_post", "roi", "weight", None,
                          chunk_rows)
            roi_name = roi_file.name
        connections = fold.fold(roi_name, "roi", "bodyId_pre", str(totals), names, chunk_rows)
    finally:
        fold.close()
    return Source(
        name=str(folder), neurons=neuron_stream(neurons, encoding=encoding),
        connections=connections,
        meta={"description": f"neuPrint bulk adjacency export ({folder.name})",
              "roiKind": "neuPrint ROI"})
