"""A small CAVE-style synapse table with planted circuits, and its truth computed with pandas.

Planted: chandelier cells (type CHC) whose outputs land mostly on axon initial segments of
pyramidal cells (and a few on other chandeliers' AIS); a basket cell (BC) with many AIS synapses
but below the threshold; a sparse AIS-only cell below the minimum synapse count; pyramidal
pairs joined by many synapses; sparse background synapses. Positions are voxels (4, 4, 40 nm).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

VOXEL_NM = (4.0, 4.0, 40.0)
ROIS = ("L23", "L4", "L5")


@dataclass
class Planted:
    synapses: pd.DataFrame
    """pre, post, compartment, roi, id, x, y, z (nm)."""
    neurons: pd.DataFrame
    chandeliers: set[int]
    multi_pairs: set[tuple[int, int]]


def build(seed: int = 7) -> Planted:
    rng = np.random.default_rng(seed)
    ids = rng.choice(np.arange(10**15, 10**15 + 10**9), size=80, replace=False)
    types = ["PYR"] * 50 + ["CHC"] * 6 + ["BC"] * 10 + ["SPARSE"] + ["MC"] * 13
    neurons = pd.DataFrame({"bodyId": ids, "type": types,
                            "instance": [f"{t}_{i}" for i, t in enumerate(types)]})
    by_type = {t: neurons.loc[neurons["type"] == t, "bodyId"].to_list() for t in set(types)}
    rows: list[tuple[int, int, str]] = []

    def add(pre: int, post: int, n: int, comps: list[str], p: list[float]) -> None:
        for c in rng.choice(comps, size=n, p=p):
            rows.append((pre, post, str(c)))

    pyr, chc = by_type["PYR"], by_type["CHC"]
    for c in chc:  # chandeliers: 4-8 AIS targets each, 3-7 synapses per target
        for t in rng.choice(pyr, size=int(rng.integers(4, 9)), replace=False):
            add(c, int(t), int(rng.integers(3, 8)), ["ais", "dendrite"], [0.9, 0.1])
    for a, b in ((chc[0], chc[1]), (chc[2], chc[3]), (chc[3], chc[2])):  # chandelier → chandelier
        add(a, b, 3, ["ais"], [1.0])
    bc = by_type["BC"]
    add(bc[0], pyr[0], 12, ["ais"], [1.0])  # decoy: 12 AIS of 30 known -> 0.4 < 0.5
    add(bc[0], pyr[1], 18, ["soma"], [1.0])
    add(bc[0], pyr[2], 10, ["unknown"], [1.0])  # unknown: not in the denominator
    for b in bc[1:]:
        for t in rng.choice(pyr, size=5, replace=False):
            add(b, int(t), int(rng.integers(1, 5)), ["soma", "dendrite"], [0.7, 0.3])
    add(by_type["SPARSE"][0], pyr[3], 5, ["ais"], [1.0])  # all AIS, but only 5 synapses
    multi = set()
    for _ in range(10):  # planted multi-synaptic pyramidal pairs
        a, b = (int(x) for x in rng.choice(pyr, size=2, replace=False))
        if (a, b) in multi:
            continue
        multi.add((a, b))
        add(a, b, int(rng.integers(6, 13)), ["dendrite", "soma", "unknown"], [0.7, 0.2, 0.1])
    everyone = [int(x) for x in ids]
    senders = [x for x in everyone if x not in by_type["SPARSE"]]
    for _ in range(400):  # background: single synapses
        a = int(rng.choice(senders))
        b = int(rng.choice([x for x in everyone if x != a]))
        add(a, b, 1, ["dendrite", "soma", "axon", "unknown"], [0.6, 0.2, 0.1, 0.1])
    syn = pd.DataFrame(rows, columns=["pre", "post", "compartment"])
    syn["id"] = rng.choice(np.arange(10**12, 10**12 + 10**7), size=len(syn), replace=False)
    syn["roi"] = rng.choice(ROIS, size=len(syn))
    syn["x"] = rng.uniform(0, 40_000, len(syn)).round() * VOXEL_NM[0]
    syn["y"] = rng.uniform(0, 40_000, len(syn)).round() * VOXEL_NM[1]
    syn["z"] = rng.integers(0, 500, len(syn)) * VOXEL_NM[2]
    chandeliers = set(chc)
    return Planted(synapses=syn, neurons=neurons, chandeliers=chandeliers, multi_pairs=multi)


def write(planted: Planted, directory: Path) -> tuple[Path, Path]:
    """The synapse table (Parquet, CAVE columns, voxel positions) and a neurons CSV."""
    s = planted.synapses
    table = pd.DataFrame({
        "id": s["id"], "pre_pt_root_id": s["pre"], "post_pt_root_id": s["post"],
        "ctr_pt_position_x": s["x"] / VOXEL_NM[0], "ctr_pt_position_y": s["y"] / VOXEL_NM[1],
        "ctr_pt_position_z": s["z"] / VOXEL_NM[2], "post_compartment": s["compartment"],
        "neuropil": s["roi"], "size": 100.0,
    })
    syn_path = directory / "synapses.parquet"
    table.to_parquet(syn_path, index=False)
    neurons_path = directory / "neurons.csv"
    planted.neurons.to_csv(neurons_path, index=False)
    return syn_path, neurons_path


def ais_fraction(syn: pd.DataFrame) -> pd.DataFrame:
    """Per presynaptic cell: AIS synapses, known-compartment synapses, their ratio."""
    known = syn[syn["compartment"] != "unknown"]
    out = known.groupby("pre").agg(known=("compartment", "size"),
                                   ais=("compartment", lambda c: int((c == "ais").sum())))
    out["fraction"] = out["ais"] / out["known"]
    return out
