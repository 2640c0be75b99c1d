"""Published C. elegans connectomes shipped in the `cect` wheel.

`cook2019` (Cook et al. 2019 hermaphrodite edge list) is read by `cect_published`; this module
holds the cell tables every C. elegans source shares and `varshney2011`: WormAtlas /
Varshney et al. 2011 (`NeuronConnectFormatted.xlsx`): chemical synapses from the send rows, gap
junctions from the EJ rows, NMJ rows counted per neuron as `nmjSynapses`. Gap junctions listed
once per direction are stored once per unordered pair. `cellClass` and neurotransmitters come
from cect's cell tables; `type` is the bilateral class of a cell name (AVAL -> AVA).
"""

from __future__ import annotations

import csv
import io
import re
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from connectome_query.ingest.errors import IngestError
from connectome_query.ingest.readers._columns import Chunk, _first
from connectome_query.ingest.readers.files import frame_chunk, read_whole
from connectome_query.ingest.tables import (
    ConnectomeTables,
    body_id_for_name,
    undirected_gap_junctions,
)

CELEGANS_SOURCES = ("cook2019", "varshney2011")


def cect_data_dir() -> Path:
    """The data folder inside the installed `cect` wheel."""
    return Path(str(resources.files("cect").joinpath("data")))


def cell_type_of(name: str, names: set[str]) -> str:
    """Bilateral/radial class of a cell: drop a trailing number after two or more capitals
    (VA01 -> VA; the pharyngeal I3 and M4 are classes of their own), then a side (L/R) when
    the cell's mirror exists, then D/V when both exist (RMDDL -> RMDD -> RMD)."""
    base = re.sub(r"0*\d+$", "", name) if re.search(r"[A-Z]{2}\d+$", name) else name
    if base != name:
        return base
    if name[-1:] in "LR" and len(name) > 2:
        mirror = name[:-1] + ("R" if name[-1] == "L" else "L")
        if mirror in names:
            stem = name[:-1]
            if stem[-1:] in "DV" and len(stem) > 2:
                other = stem[:-1] + ("V" if stem[-1] == "D" else "D")
                if other + "L" in names or other + "R" in names:
                    return stem[:-1]
            return stem
    return name


def read_cell_info(path: Path) -> dict[str, str]:
    """Cell name -> class ("Type" column). The published file has rows with a sixth field,
    so it is read with the csv module and only the first two fields are used."""
    text = path.read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or [h.strip() for h in rows[0][:2]] != ["Cell name", "Type"]:
        raise IngestError(path, "expected a header starting with 'Cell name,Type'", row=1)
    return {r[0].strip(): r[1].strip() for r in rows[1:] if len(r) >= 2 and r[0].strip()}


def read_neurotransmitters(path: Path) -> dict[str, str]:
    """Cell name -> neurotransmitter(s), comma-joined when a cell has several."""
    table = read_whole(path)
    table.require("Entity1", "Relationship", "Entity2")
    frame = pd.DataFrame(
        {"cell": _text(table, "Entity1"), "rel": _text(table, "Relationship"),
         "nt": _text(table, "Entity2")}
    )
    frame = frame[frame["rel"] == "Neurotransmitter"]
    return {str(cell): ", ".join(sorted(set(g["nt"]))) for cell, g in frame.groupby("cell")}


def _text(table: Chunk, column: str) -> list[str]:
    return table.texts(column, required=True).to_pylist()


def _lookup(table: dict[str, str], name: str) -> str | None:
    """Find a cell in a table that may write its number with or without a leading zero
    (Cook's AS01 is AS1 in WormAtlas's tables, while MDL01 keeps its zero)."""
    if name in table:
        return table[name]
    match = re.match(r"^(.*?[A-Z])0*(\d+)$", name)
    if match:
        stem, number = match.groups()
        for candidate in (f"{stem}{number}", f"{stem}{int(number):02d}"):
            if candidate in table:
                return table[candidate]
    return None


def _muscle_class(name: str) -> str | None:
    """Cook's body-wall muscle names (dBWML1, vBWMR24) are absent from WormAtlas's cell table."""
    return "Main body muscle" if re.match(r"^[dv]BWM[LR]\d+$", name) else None


def cell_table(names: list[str], data: Path) -> pd.DataFrame:
    """Neurons (and other cells) by name: bodyId from the name, type from the bilateral class,
    cellClass and neurotransmitters from cect's cell tables."""
    classes = read_cell_info(data / "all_cell_info.csv")
    transmitters = read_neurotransmitters(data / "Modified celegans db dump.csv")
    known = set(names)
    ids = {n: body_id_for_name(n) for n in names}
    if len(set(ids.values())) != len(ids):
        raise IngestError(data, "two cell names hash to the same bodyId")
    return pd.DataFrame(
        {
            "bodyId": [ids[n] for n in names],
            "instance": names,
            "type": [cell_type_of(n, known) for n in names],
            "cellClass": [_lookup(classes, n) or _muscle_class(n) for n in names],
            "neurotransmitter": [_lookup(transmitters, n) for n in names],
            "status": ["Traced"] * len(names),
        }
    )


def _edges(frame: pd.DataFrame, ids: dict[str, int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "bodyIdPre": frame["pre"].map(ids).astype("int64"),
            "bodyIdPost": frame["post"].map(ids).astype("int64"),
            "weight": frame["weight"].astype("int64"),
        }
    )


def named_connectome(source: str, frame: pd.DataFrame, data: Path,
                     meta: dict[str, Any]) -> ConnectomeTables:
    """A connectome of named cells from edges (`pre`, `post`, `weight`, `kind`: chemical or
    electrical, at most one row per (pre, post, kind); optionally `publishedWeight`, kept on
    chemical connections); gap junctions folded to unordered pairs."""
    names = sorted(set(frame["pre"]) | set(frame["post"]))
    neurons = cell_table(names, data)
    ids = dict(zip(neurons["instance"], neurons["bodyId"], strict=True))
    chemical = frame[frame["kind"] == "chemical"]
    chem = _edges(chemical, ids)
    chem["kind"] = "chemical"
    if "publishedWeight" in frame:
        chem["publishedWeight"] = chemical["publishedWeight"].to_numpy(np.float64)
    elec = undirected_gap_junctions(_edges(frame[frame["kind"] == "electrical"], ids))
    conns = pd.concat([chem, elec], ignore_index=True)
    return ConnectomeTables(source=source, neurons=neurons, connections=conns, meta=meta)


def check_kinds(table: Chunk, kinds: pd.Series, allowed: set[str], column: str) -> None:
    pos = _first(~kinds.isin(allowed).to_numpy())
    if pos is not None:
        raise table.error(pos, column, f"unknown connection type {kinds.iloc[pos]!r} (expected "
                          f"one of {sorted(allowed)})")


def read_varshney2011(data: Path | None = None) -> ConnectomeTables:
    """WormAtlas / Varshney et al. 2011 (NeuronConnectFormatted.xlsx)."""
    data = data or cect_data_dir()
    path = data / "NeuronConnectFormatted.xlsx"
    try:
        sheet = pd.read_excel(path, dtype=object)
    except Exception as exc:
        raise IngestError(path, f"not a readable spreadsheet ({exc})") from None
    table = frame_chunk(str(path), sheet, first_row=2)
    table.require("Neuron 1", "Neuron 2", "Type", "Nbr")
    frame = pd.DataFrame(
        {
            "pre": _text(table, "Neuron 1"),
            "post": _text(table, "Neuron 2"),
            "kind": _text(table, "Type"),
            "weight": table.integers("Nbr", ids=False),
        }
    )
    check_kinds(table, frame["kind"], {"S", "Sp", "R", "Rp", "EJ", "NMJ"}, "Type")
    nmj = frame[frame["kind"] == "NMJ"].groupby("pre")["weight"].sum()
    cells = frame[frame["kind"] != "NMJ"]
    names = sorted(set(cells["pre"]) | set(cells["post"]) | set(nmj.index))
    neurons = cell_table(names, data)
    neurons["nmjSynapses"] = neurons["instance"].map(nmj).fillna(0).astype("int64")
    ids = dict(zip(neurons["instance"], neurons["bodyId"], strict=True))
    send_rows = cells[cells["kind"].isin(["S", "Sp"])]
    send = send_rows.groupby(["pre", "post"])["weight"].sum().reset_index()
    chem = _edges(send, ids)
    chem["kind"] = "chemical"
    elec = undirected_gap_junctions(_edges(cells[cells["kind"] == "EJ"], ids))
    conns = pd.concat([chem, elec], ignore_index=True)
    return ConnectomeTables(
        source=str(path), neurons=neurons, connections=conns,
        meta={"description": "C. elegans hermaphrodite, WormAtlas / Varshney et al. 2011 (cect)",
              "species": "Caenorhabditis elegans"},
    )
