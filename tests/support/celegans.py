"""Independent readings of the raw cect files with pandas/networkx, for comparing answers.

Deliberately shares no code with `ingest/`: if a reader is wrong, these disagree.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import networkx as nx
import pandas as pd


def data_dir() -> Path:
    spec = importlib.util.find_spec("cect")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def cook_edges() -> pd.DataFrame:
    raw = pd.read_csv(data_dir() / "herm_full_edgelist.csv")
    raw["Source"] = raw["Source"].str.strip()
    raw["Target"] = raw["Target"].str.strip()
    return raw


def cook_chemical_graph() -> nx.DiGraph:
    raw = cook_edges()
    chem = raw[raw["Type"] == "chemical"]
    g = nx.DiGraph()
    for s, t, w in zip(chem["Source"], chem["Target"], chem["Weight"], strict=True):
        g.add_edge(s, t, weight=int(w))
    return g


def undirected_max(pairs: pd.DataFrame, a: str, b: str, w: str) -> dict[frozenset[str], int]:
    """Gap junctions listed per direction: one weight per unordered pair, the larger one."""
    out: dict[frozenset[str], int] = {}
    for x, y, weight in zip(pairs[a], pairs[b], pairs[w], strict=True):
        key = frozenset((x, y))
        out[key] = max(out.get(key, 0), int(weight))
    return out


def cook_gap_junctions() -> dict[frozenset[str], int]:
    raw = cook_edges()
    return undirected_max(raw[raw["Type"] == "electrical"], "Source", "Target", "Weight")


def varshney_rows() -> pd.DataFrame:
    return pd.read_excel(data_dir() / "NeuronConnectFormatted.xlsx")


def varshney_chemical_total() -> int:
    x = varshney_rows()
    return int(x[x["Type"].isin(["S", "Sp"])]["Nbr"].sum())


def varshney_gap_junctions() -> dict[frozenset[str], int]:
    x = varshney_rows()
    return undirected_max(x[x["Type"] == "EJ"], "Neuron 1", "Neuron 2", "Nbr")
