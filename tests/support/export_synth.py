"""A synthetic neuPrint-style dataset for the export tests, and independent readings of it.

The set is made by numpy here and written as Parquet; expected matrices are computed from those
files with pandas/networkx only, never with the export code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd

from connectome_query.ingest.tables import ConnectomeTables, undirected_gap_junctions

SYNTH = "t_export_synth"
ROIS = ("A", "B", "C")


@dataclass
class SynthSet:
    """Raw files of the synthetic dataset, and independent readings of them."""

    folder: Path
    neurons: pd.DataFrame
    connections: pd.DataFrame

    def chemical(self, min_weight: int = 1, rois: set[str] | None = None) -> nx.DiGraph:
        g = nx.DiGraph()
        g.add_nodes_from(self.neurons["bodyId"].astype(int))
        chem = self.connections[self.connections["kind"] == "chemical"]
        for pre, post, w, roi in zip(chem["bodyId_pre"], chem["bodyId_post"], chem["weight"],
                                     chem["roiInfo"], strict=True):
            if rois is not None:
                info = json.loads(roi) if isinstance(roi, str) else {}
                w = sum(v.get("post", 0) for k, v in info.items() if k in rois)
            if w >= min_weight:
                g.add_edge(int(pre), int(post), weight=int(w))
        return g

    def electrical(self, min_weight: int = 1) -> nx.Graph:
        g = nx.Graph()
        g.add_nodes_from(self.neurons["bodyId"].astype(int))
        elec = self.connections[self.connections["kind"] == "electrical"]
        best: dict[frozenset[int], tuple[int, int, int]] = {}
        for a, b, w in zip(elec["bodyId_pre"], elec["bodyId_post"], elec["weight"], strict=True):
            key = frozenset((int(a), int(b)))
            if key not in best or w > best[key][2]:
                best[key] = (int(a), int(b), int(w))
        for a, b, w in best.values():
            if w >= min_weight:
                g.add_edge(a, b, weight=w)
        return g

    def types(self) -> dict[int, str | None]:
        return {int(b): (t if isinstance(t, str) else None)
                for b, t in zip(self.neurons["bodyId"], self.neurons["type"], strict=True)}


def make_synth(folder: Path, seed: int = 7, n: int = 300, m: int = 3000,
               gaps: int = 400) -> SynthSet:
    rng = np.random.default_rng(seed)
    ids = np.sort(rng.choice(np.arange(10**12, 10**12 + 10**7), size=n, replace=False))
    type_names = np.array([f"T{i:02d}" for i in range(12)], dtype=object)
    types = type_names[np.minimum(rng.zipf(1.6, size=n) - 1, 11)]
    types[rng.random(n) < 0.05] = None  # a few untyped neurons
    neurons = pd.DataFrame({
        "bodyId": ids, "type": types,
        "instance": [f"{t}_{i}" if t else f"cell_{i}" for i, t in enumerate(types)],
        "status": "Traced",
    })
    # Heavy-tailed out-degree: a few hubs, many small cells.
    prop = rng.pareto(1.5, size=n) + 0.1
    pre = rng.choice(n, size=m * 2, p=prop / prop.sum())
    post = rng.integers(0, n, size=m * 2)
    pairs = pd.DataFrame({"pre": ids[pre], "post": ids[post]}).drop_duplicates().head(m)
    weight = np.minimum(rng.zipf(1.8, size=len(pairs)), 500)
    weight[:5] = 0  # zero-weight connections exist in published data
    roi_info = []
    for w in weight:
        counts = rng.multinomial(int(w), [0.4, 0.3, 0.2, 0.1])  # last bucket: outside ROIs
        info = {r: {"pre": int(c), "post": int(c)} for r, c in zip(ROIS, counts[:3],
                                                                    strict=True) if c}
        roi_info.append(json.dumps(info) if info else None)
    chem = pd.DataFrame({"bodyId_pre": pairs["pre"].to_numpy(),
                         "bodyId_post": pairs["post"].to_numpy(), "weight": weight,
                         "roiInfo": roi_info, "kind": "chemical"})
    # Gap junctions listed per direction, the two directions sometimes disagreeing; one
    # self-coupled cell.
    a = rng.integers(0, n, size=gaps)
    b = rng.integers(0, n, size=gaps)
    gp = pd.DataFrame({"a": ids[a], "b": ids[b]})
    gp = gp[gp["a"] != gp["b"]]
    gp = gp.assign(lo=gp[["a", "b"]].min(axis=1), hi=gp[["a", "b"]].max(axis=1))
    gp = gp.drop_duplicates(["lo", "hi"])
    gw = np.minimum(rng.zipf(2.0, size=len(gp)), 60)
    forward = pd.DataFrame({"bodyId_pre": gp["a"], "bodyId_post": gp["b"], "weight": gw})
    backward = pd.DataFrame({"bodyId_pre": gp["b"], "bodyId_post": gp["a"],
                             "weight": gw + (rng.random(len(gp)) < 0.2)})
    loop = pd.DataFrame({"bodyId_pre": [ids[0]], "bodyId_post": [ids[0]], "weight": [3]})
    elec = pd.concat([forward, backward, loop], ignore_index=True).assign(
        kind="electrical", roiInfo=None)
    conns = pd.concat([chem, elec[chem.columns]], ignore_index=True)
    folder.mkdir(parents=True, exist_ok=True)
    # Parquet keeps missing types as nulls (the CSV reader turns empty cells into "nan").
    neurons.to_parquet(folder / "neurons.parquet", index=False)
    conns.to_parquet(folder / "connections.parquet", index=False)
    # Re-read the files so expectations come from exactly what ingest sees.
    return SynthSet(folder, pd.read_parquet(folder / "neurons.parquet"),
                    pd.read_parquet(folder / "connections.parquet"))


def synth_tables(data: SynthSet) -> ConnectomeTables:
    """The raw frames as ingest tables (built here, since ingest's file readers turn missing
    text into the string "nan" under pandas 3; the loader is the real one)."""
    conns = data.connections.rename(columns={"bodyId_pre": "bodyIdPre",
                                             "bodyId_post": "bodyIdPost"})
    chem = conns[conns["kind"] == "chemical"]
    elec = undirected_gap_junctions(conns[conns["kind"] == "electrical"])
    neurons = data.neurons.astype(object).where(data.neurons.notna(), None)
    neurons["bodyId"] = data.neurons["bodyId"].astype("int64")
    connections = pd.concat([chem, elec], ignore_index=True)
    connections["roiInfo"] = connections["roiInfo"].astype(object).where(
        connections["roiInfo"].notna(), None)
    return ConnectomeTables(source=str(data.folder), neurons=neurons, connections=connections)
