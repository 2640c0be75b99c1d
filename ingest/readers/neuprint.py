"""neuPrint-style bulk CSV (or Parquet): a neurons file and a connections file.

neurons: `bodyId` (required), optional `type`, `instance`, `status`, `cellClass`,
`neurotransmitter` (or `predictedNt`), `size`, and a soma as `somaLocation` ("[x, y, z]") or
`somaX`, `somaY`, `somaZ`.
connections: `bodyId_pre`, `bodyId_post`, `weight` (required), optional `roiInfo` (JSON text
`{"ROI": {"pre": n, "post": m}}`) and `kind` (`chemical`, the default, or `electrical`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from connectome_query.ingest.errors import IngestError
from connectome_query.ingest.readers._columns import Table, read_table
from connectome_query.ingest.tables import ConnectomeTables, undirected_gap_junctions

NEURON_FILES = ("neurons.csv", "neurons.parquet", "Neuprint_Neurons.csv")
CONNECTION_FILES = ("connections.csv", "connections.parquet", "Neuprint_Neuron_Connections.csv")


def find_neuprint_files(directory: Path) -> tuple[Path, Path] | None:
    """The (neurons, connections) files in a folder, or None when it holds no such pair."""
    neurons = next((directory / n for n in NEURON_FILES if (directory / n).exists()), None)
    conns = next((directory / n for n in CONNECTION_FILES if (directory / n).exists()), None)
    return (neurons, conns) if neurons and conns else None


def _soma(table: Table) -> tuple[pd.Series, pd.Series, pd.Series]:
    cols = table.frame.columns
    n = len(table.frame)
    if {"somaX", "somaY", "somaZ"} <= set(cols):
        return table.number("somaX"), table.number("somaY"), table.number("somaZ")
    xs, ys, zs = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    if "somaLocation" in cols:
        for i, value in enumerate(table.text("somaLocation", required=False)):
            if value is None:
                continue
            try:
                point = json.loads(value)
                if len(point) != 3:
                    raise ValueError
                xs[i], ys[i], zs[i] = (float(v) for v in point)
            except (ValueError, TypeError):
                raise IngestError(table.path, f"expected [x, y, z], found {value!r}",
                                  row=table.row_of(i), column="somaLocation") from None
    idx = table.frame.index
    return pd.Series(xs, index=idx), pd.Series(ys, index=idx), pd.Series(zs, index=idx)


def _roi_info(table: Table) -> pd.Series:
    if "roiInfo" not in table.frame.columns:
        return pd.Series([None] * len(table.frame), dtype=object)
    values = table.text("roiInfo", required=False)
    for i, value in enumerate(values):
        if value is None:
            continue
        try:
            parsed = json.loads(value)
            ok = isinstance(parsed, dict) and all(isinstance(v, dict) for v in parsed.values())
        except ValueError:
            ok = False
        if not ok:
            raise IngestError(table.path, 'expected JSON like {"ROI": {"pre": 1, "post": 2}}',
                              row=table.row_of(i), column="roiInfo")
    return values.reset_index(drop=True)


def read_neurons(path: Path, *, encoding: str = "utf-8") -> pd.DataFrame:
    table = read_table(path, encoding=encoding)
    table.require("bodyId")
    frame = table.frame
    out = pd.DataFrame({"bodyId": table.integer("bodyId", minimum=0)})
    for name in ("type", "instance", "status", "cellClass"):
        out[name] = table.text(name, required=False) if name in frame.columns else None
    nt_col = next((c for c in ("neurotransmitter", "predictedNt") if c in frame.columns), None)
    out["neurotransmitter"] = table.text(nt_col, required=False) if nt_col else None
    out["size"] = table.number("size") if "size" in frame.columns else np.nan
    out["somaX"], out["somaY"], out["somaZ"] = _soma(table)
    dup = out["bodyId"].duplicated()
    if dup.any():
        pos = int(dup.to_numpy().nonzero()[0][0])
        raise IngestError(path, f"duplicate bodyId {int(out['bodyId'].iloc[pos])}",
                          row=table.row_of(pos), column="bodyId")
    return out


def read_connections(path: Path, *, encoding: str = "utf-8") -> pd.DataFrame:
    table = read_table(path, encoding=encoding)
    table.require("bodyId_pre", "bodyId_post", "weight")
    out = pd.DataFrame(
        {
            "bodyIdPre": table.integer("bodyId_pre", minimum=0),
            "bodyIdPost": table.integer("bodyId_post", minimum=0),
            "weight": table.integer("weight", minimum=0),
        }
    )
    if "kind" in table.frame.columns:
        kinds = table.text("kind").str.lower()
        bad = ~kinds.isin(["chemical", "electrical"])
        if bad.any():
            pos = int(bad.to_numpy().nonzero()[0][0])
            raise IngestError(path, f"unknown kind {kinds.iloc[pos]!r} (chemical or electrical)",
                              row=table.row_of(pos), column="kind")
        out["kind"] = kinds.to_numpy()
    else:
        out["kind"] = "chemical"
    out["roiInfo"] = _roi_info(table).to_numpy()
    dup = out.duplicated(["bodyIdPre", "bodyIdPost", "kind"])
    if dup.any():
        pos = int(dup.to_numpy().nonzero()[0][0])
        raise IngestError(path, "the same connection is listed twice", row=table.row_of(pos),
                          column="bodyId_pre")
    return out


def read_neuprint(neurons_path: Path, connections_path: Path, *,
                  encoding: str = "utf-8") -> ConnectomeTables:
    """Read a neurons file and a connections file into tables."""
    neurons = read_neurons(neurons_path, encoding=encoding)
    conns = read_connections(connections_path, encoding=encoding)
    known = set(neurons["bodyId"].tolist())
    for col, name in (("bodyIdPre", "bodyId_pre"), ("bodyIdPost", "bodyId_post")):
        missing = ~conns[col].isin(known)
        if missing.any():
            pos = int(missing.to_numpy().nonzero()[0][0])
            raise IngestError(
                connections_path,
                f"bodyId {int(conns[col].iloc[pos])} is not in {neurons_path.name}",
                row=pos + (2 if connections_path.suffix == ".csv" else 1), column=name,
            )
    chem = conns[conns["kind"] == "chemical"]
    elec = conns[conns["kind"] == "electrical"]
    if not elec.empty:
        elec = undirected_gap_junctions(elec)
    return ConnectomeTables(
        source=str(connections_path.parent),
        neurons=neurons,
        connections=pd.concat([chem, elec], ignore_index=True),
        meta={"description": f"neuPrint-style tables from {connections_path.parent}"},
    )
