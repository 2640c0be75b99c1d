"""A small dataset from navis' five hemibrain neurons: their skeletons (SWC files) and a CAVE
synapse table at their real connector positions, each synapse's partner drawn at random from
the other four (navis ships positions, not partners)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

VOXEL_NM = 8.0
"""navis' hemibrain example neurons are in 8 nm voxels."""


@dataclass
class Hemibrain:
    synapses: pd.DataFrame
    """pre, post, x, y, z (nm), confidence, roi: one row per synapse, as loaded."""
    skeletons: dict[int, pd.DataFrame]
    """bodyId -> SWC rows (node_id, type, x, y, z, radius, parent_id), voxels."""
    table: Path
    swc_dir: Path


def write_hemibrain(folder: Path, seed: int = 7) -> Hemibrain:
    """Write `synapses.csv` (CAVE columns, voxel positions) and `swc/<bodyId>.swc`."""
    import navis

    rng = np.random.default_rng(seed)
    neurons = list(navis.example_neurons(5, kind="skeleton"))
    ids = [int(n.id) for n in neurons]
    rows = []
    for n in neurons:
        me = int(n.id)
        others = [b for b in ids if b != me]
        c = n.connectors
        for kind, part in c.groupby("type"):
            if kind not in ("pre", "post"):
                continue
            partners = rng.choice(others, size=len(part))
            pre = np.full(len(part), me) if kind == "pre" else partners
            post = partners if kind == "pre" else np.full(len(part), me)
            rows.append(pd.DataFrame({
                "pre": pre, "post": post, "x": part["x"].to_numpy(), "y": part["y"].to_numpy(),
                "z": part["z"].to_numpy(), "confidence": part["confidence"].to_numpy(),
                "roi": part["roi"].fillna("None").to_numpy()}))
    syn = pd.concat(rows, ignore_index=True)
    syn["id"] = np.arange(1, len(syn) + 1)
    folder.mkdir(parents=True, exist_ok=True)
    table = folder / "synapses.csv"
    pd.DataFrame({
        "id": syn["id"], "pre_pt_root_id": syn["pre"], "post_pt_root_id": syn["post"],
        "ctr_pt_position": [f"[{x}, {y}, {z}]" for x, y, z in
                            zip(syn["x"], syn["y"], syn["z"], strict=True)],
        "confidence": syn["confidence"], "neuropil": syn["roi"]}).to_csv(table, index=False)
    swc_dir = folder / "swc"
    swc_dir.mkdir(exist_ok=True)
    skeletons = {}
    for n in neurons:
        nodes = n.nodes
        swc = pd.DataFrame({"node_id": nodes["node_id"], "type": 0, "x": nodes["x"],
                            "y": nodes["y"], "z": nodes["z"], "radius": nodes["radius"],
                            "parent_id": nodes["parent_id"]})
        swc.to_csv(swc_dir / f"{int(n.id)}.swc", sep=" ", header=False, index=False)
        skeletons[int(n.id)] = swc
    nm = syn.copy()
    for axis in "xyz":
        nm[axis] = nm[axis] * VOXEL_NM
    return Hemibrain(synapses=nm, skeletons=skeletons, table=table, swc_dir=swc_dir)
