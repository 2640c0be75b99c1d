"""FlyWire connectome downloads from Codex (codex.flywire.ai "Download"), CSV or gzipped CSV, in
one folder:

- `connections*.csv[.gz]` (required; `connections`, `connections_no_threshold`, ...):
  `pre_root_id`, `post_root_id`, `neuropil`, `syn_count`, optional `nt_type`, one row per
  (pre, post, neuropil); folded into one connection per pair whose weight is the sum and whose
  per-neuropil counts are its ROI weights (`roiInfo`, `rois`, `roiWeights`).
- `neurons.csv[.gz]`: `root_id`, `group`, `nt_type` (the neuron's predicted transmitter).
- `classification.csv[.gz]`: `root_id`, `super_class`, `class`, `cell_type`, `hemibrain_type`,
  ... : `cellClass` is `class`, else `super_class`; `type` falls back to `cell_type`, then
  `hemibrain_type`.
- `consolidated_cell_types.csv[.gz]`: `root_id`, `primary_type` (the neuron's `type`).
- `names.csv[.gz]`: `root_id`, `name` (the neuron's `instance`).

Every neuron table is optional; without any, the neurons are the ids the connections name,
and a neuron's transmitter is the `nt_type` of most of its output synapses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from connectome_query.graphdb.settings import IngestSettings, from_env
from connectome_query.ingest.errors import IngestError
from connectome_query.ingest.readers.canonical import FileStream, NeuronColumns
from connectome_query.ingest.readers.files import FrameTable, TableFile, open_table, read_whole
from connectome_query.ingest.readers.roi_rows import RoiFold
from connectome_query.ingest.tables import Source

CONNECTION_COLUMNS = ("pre_root_id", "post_root_id", "neuropil", "syn_count")
NEURON_TABLES = {
    # file stem -> (canonical, source column) in order of preference
    "neurons": (("neurotransmitter", "nt_type"),),
    "classification": (("cellClass", "class"), ("cellClass", "super_class"),
                       ("type", "cell_type"), ("type", "hemibrain_type")),
    "consolidated_cell_types": (("type", "primary_type"),),
    "names": (("instance", "name"),),
}
"""Later tables win for `type` (consolidated cell types over classification)."""


def _table_path(folder: Path, stem: str) -> Path | None:
    for suffix in (".csv", ".csv.gz"):
        if (folder / f"{stem}{suffix}").exists():
            return folder / f"{stem}{suffix}"
    return None


def connection_files(folder: Path) -> list[Path]:
    """The Codex connection tables in `folder` (header starts with pre_root_id ...)."""
    found = []
    candidates = [*folder.glob("connections*.csv"), *folder.glob("connections*.csv.gz")]
    for path in sorted(candidates):
        try:
            file = open_table(path)
        except IngestError:
            continue
        if all(file.has(c) for c in ("pre_root_id", "post_root_id")):
            found.append(path)
    return found


def is_codex_dir(folder: Path) -> bool:
    return bool(connection_files(folder))


def _neuron_frame(folder: Path) -> tuple[pd.DataFrame, list[str]] | None:
    """Every neuron table present, checked and joined on root_id (None when none is there)."""
    joined: pd.DataFrame | None = None
    used: list[str] = []
    for stem, pairs in NEURON_TABLES.items():
        path = _table_path(folder, stem)
        if path is None:
            continue
        table = read_whole(path)
        table.require("root_id")
        ids = table.integers("root_id")
        order = np.argsort(ids, kind="stable")
        twice = np.flatnonzero(ids[order][1:] == ids[order][:-1])
        if len(twice):
            pos = int(order[1:][twice].min())
            raise table.error(pos, "root_id", f"root_id {ids[pos]} listed twice")
        frame = pd.DataFrame({"bodyId": ids})
        for canonical, column in pairs:
            if not table.has(column):
                continue
            values = pd.Series(table.texts(column).to_pylist(), dtype=object)
            frame[canonical] = (values if canonical not in frame
                                else frame[canonical].where(frame[canonical].notna(), values))
        used.append(path.name)
        if joined is None:
            joined = frame
            continue
        joined = joined.merge(frame, on="bodyId", how="outer", suffixes=("", "_new"))
        for canonical in [c for c in frame.columns if c != "bodyId"]:
            if f"{canonical}_new" in joined:
                new = joined.pop(f"{canonical}_new")
                joined[canonical] = new.where(new.notna(), joined[canonical])
    if joined is None:
        return None
    return joined.sort_values("bodyId", kind="stable").reset_index(drop=True), used


def _majority_transmitter(fold: RoiFold) -> pd.DataFrame:
    """Per presynaptic neuron, the `nt_type` of most of its output synapses."""
    sums = fold.outputs.result()
    pre, nt, w = (sums.column(c).to_numpy() for c in ("pre", "extra", "weight"))
    best = np.lexsort((-w, pre))
    first = np.r_[True, pre[best][1:] != pre[best][:-1]] if len(pre) else np.zeros(0, bool)
    names = np.array(list(fold.extra_names) or [""], dtype=object)
    return pd.DataFrame({"bodyId": pre[best][first],
                         "neurotransmitter": names[nt[best][first]]})


def codex_source(folder: Path, *, encoding: str = "utf-8") -> Source:
    """A Codex download folder as a source (exactly one connection table)."""
    files = connection_files(folder)
    if len(files) != 1:
        raise IngestError(folder, "expected one Codex connection table (connections*.csv[.gz] "
                          f"with pre_root_id), found {', '.join(p.name for p in files)}; move "
                          "the others out")
    file: TableFile = open_table(files[0], encoding=encoding)
    file.require(*CONNECTION_COLUMNS)
    chunk_rows = from_env(IngestSettings).chunk_rows
    found = _neuron_frame(folder)
    fold = RoiFold(keep_ids=found is None)
    majority_needed = found is None or "neurotransmitter" not in found[0]
    try:
        fold.add_rois(file, "pre_root_id", "post_root_id", "neuropil", "syn_count",
                      "nt_type" if file.has("nt_type") and majority_needed else None,
                      chunk_rows)
        names = {"bodyIdPre": "pre_root_id", "bodyIdPost": "post_root_id", "weight": "syn_count"}
        connections = fold.fold(file.name, "neuropil", "pre_root_id", None, names, chunk_rows)
    finally:
        fold.close()
    majority = _majority_transmitter(fold)
    if found is None:
        neurons = pd.DataFrame({"bodyId": fold.ids}).merge(majority, on="bodyId", how="left")
        described = "neurons from the connection table"
    else:
        neurons, used = found
        if "neurotransmitter" not in neurons:
            neurons = neurons.merge(majority, on="bodyId", how="left")
        described = " + ".join(used)
    neurons = neurons.astype({c: object for c in neurons.columns if c != "bodyId"})
    neurons = neurons.where(neurons.notna(), None)
    frame = FrameTable(f"{folder} ({described})", neurons)
    text = tuple((c, c) for c in ("instance", "type", "cellClass", "neurotransmitter")
                 if c in neurons)
    stream = FileStream(frame, NeuronColumns(body_id="bodyId", text=text), {"bodyId": "root_id"})
    return Source(name=str(folder), neurons=stream, connections=connections, meta={
        "description": f"FlyWire connectome from a Codex download ({files[0].name})",
        "species": "Drosophila melanogaster", "roiKind": "neuropil"})
