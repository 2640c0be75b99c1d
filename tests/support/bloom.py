"""A small synthetic synapse table with compartments, for the Bloom and dump tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

SYN_DATASET = "t_bloom_syn"


@dataclass(frozen=True)
class Synthetic:
    """The raw synthetic input, as pandas read it back (independent of `ingest/`)."""

    neurons: pd.DataFrame  # bodyId, instance, type
    synapses: pd.DataFrame  # id, pre_pt_root_id, post_pt_root_id, post_compartment, ...

    def name(self, body: int) -> str:
        return str(self.neurons.set_index("bodyId").loc[body, "instance"])


def make_synthetic(folder: Path, seed: int = 7) -> tuple[Path, Path]:
    """Write neurons.csv and synapses.csv: a few axo-axonic (chandelier-like) cells whose
    outputs mostly land on axon initial segments, and ordinary cells that rarely do."""
    rng = np.random.default_rng(seed)
    n = 30
    ids = rng.choice(10**9, size=n, replace=False).astype(np.int64) + 10**10
    kinds = np.array(["ChC"] * 6 + ["PyC"] * 18 + ["BC"] * 6)
    names = [f"{k}_{i:02d}" for i, k in enumerate(kinds)]
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"bodyId": ids, "instance": names, "type": kinds}).to_csv(
        folder / "neurons.csv", index=False)
    rows = []
    sid = 1000
    for i in range(n):
        # ChC: 40-90 % of outputs onto AIS (some below the 0.5 bar); others 0-15 %.
        p_ais = rng.uniform(0.4, 0.9) if kinds[i] == "ChC" else rng.uniform(0.0, 0.15)
        n_out = int(rng.integers(8, 40))
        for _ in range(n_out):
            post = int(rng.integers(0, n))
            if post == i:
                continue
            r = rng.random()
            if r < p_ais:
                comp = "ais"
            else:
                comp = rng.choice(["soma", "dendrite", "axon", "unknown"], p=[.2, .5, .1, .2])
            x, y, z = rng.integers(0, 5000, 3)
            rows.append((sid, int(ids[i]), int(ids[post]), x, y, z, comp))
            sid += 1
    pd.DataFrame(rows, columns=["id", "pre_pt_root_id", "post_pt_root_id", "ctr_pt_position_x",
                                "ctr_pt_position_y", "ctr_pt_position_z", "post_compartment"]
                 ).to_csv(folder / "synapses.csv", index=False)
    return folder / "synapses.csv", folder / "neurons.csv"
