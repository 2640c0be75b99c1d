"""Chandelier (axo-axonic) cells inferred from connectivity at ingest.

A neuron is a chandelier cell when at least `threshold` (0.5) of its output synapses with a known
postsynaptic compartment land on an axon initial segment, and it has at least `min_synapses` (10)
of them. `unknown` compartments stay out of the denominator, so partial annotation does not dilute
the share; without compartments nothing is classified (Meta: `chandelierClassified = false`).
Pure functions, on per-neuron counts (what streaming ingest gathers) or on `ConnectomeTables`;
the loader stores the result on neurons and the rule on Meta.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from connectome_query.ingest.tables import ConnectomeTables

RULE_NAME = "aisOutputFraction"


@dataclass(frozen=True)
class ChandelierRule:
    """When a neuron counts as a chandelier cell (see the module docstring)."""

    threshold: float = 0.5
    min_synapses: int = 10

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"chandelier threshold must be in (0, 1], got {self.threshold}")
        if self.min_synapses < 1:
            raise ValueError(f"chandelier min_synapses must be >= 1, got {self.min_synapses}")

    def describe(self) -> str:
        return (f"{RULE_NAME} >= {self.threshold:g} with >= {self.min_synapses} output synapses "
                "of known compartment (ais / (soma + axon + ais + dendrite))")


def chandelier_arrays(known: np.ndarray, ais: np.ndarray,
                      rule: ChandelierRule) -> tuple[np.ndarray, np.ndarray]:
    """Per neuron, from its output synapses of known compartment and those onto an AIS: the AIS
    fraction (NaN without known outputs) and whether it is a chandelier cell."""
    frac = np.where(known > 0, ais / np.maximum(known, 1), np.nan)
    flag = (known >= rule.min_synapses) & (np.nan_to_num(frac, nan=0.0) >= rule.threshold)
    return frac, flag


def chandelier_meta(rule: ChandelierRule, classified: bool, count: int) -> dict[str, Any]:
    """The Meta properties that record the rule and what it found."""
    return {
        "chandelierClassified": classified,
        "chandelierRule": rule.describe() if classified else
        "not classified: no synapse has a known postsynaptic compartment",
        "chandelierThreshold": float(rule.threshold),
        "chandelierMinSynapses": int(rule.min_synapses),
        "chandelierCount": int(count),
    }


def classify_chandeliers(tables: ConnectomeTables,
                         rule: ChandelierRule | None = None) -> pd.DataFrame:
    """Per neuron: `aisOutputSynapses`, `knownOutputSynapses`, `aisOutputFraction` (NaN when no
    output synapse has a known compartment) and `chandelier` (bool), indexed like
    `tables.neurons`."""
    rule = rule or ChandelierRule()
    ids = tables.neurons["bodyId"]
    out = pd.DataFrame({"bodyId": ids.to_numpy()}, index=tables.neurons.index)
    syn = tables.synapses
    n_known: np.ndarray
    n_ais: np.ndarray
    if syn is None or syn.empty or "postCompartment" not in syn.columns:
        n_known = np.zeros(len(ids), dtype=np.int64)
        n_ais = np.zeros(len(ids), dtype=np.int64)
    else:
        comp = syn["postCompartment"].fillna("unknown").astype(str)
        known = syn.loc[comp != "unknown", "bodyIdPre"]
        ais = syn.loc[comp == "ais", "bodyIdPre"]
        n_known = ids.map(known.value_counts()).fillna(0).astype("int64").to_numpy()
        n_ais = ids.map(ais.value_counts()).fillna(0).astype("int64").to_numpy()
    frac, flag = chandelier_arrays(n_known, n_ais, rule)
    out["aisOutputSynapses"] = n_ais
    out["knownOutputSynapses"] = n_known
    out["aisOutputFraction"] = frac
    out["chandelier"] = flag
    return out


def has_compartments(tables: ConnectomeTables) -> bool:
    """Whether any synapse has a known postsynaptic compartment."""
    syn = tables.synapses
    if syn is None or syn.empty or "postCompartment" not in syn.columns:
        return False
    return bool((syn["postCompartment"].fillna("unknown") != "unknown").any())


def with_chandelier_classification(tables: ConnectomeTables,
                                   rule: ChandelierRule | None = None) -> ConnectomeTables:
    """A copy of `tables` whose neurons carry the classification and whose meta the rule."""
    rule = rule or ChandelierRule()
    result = classify_chandeliers(tables, rule)
    neurons = tables.neurons.copy()
    neurons["chandelier"] = result["chandelier"].to_numpy().astype(bool)
    neurons["aisOutputFraction"] = result["aisOutputFraction"].to_numpy()
    neurons["aisOutputSynapses"] = result["aisOutputSynapses"].to_numpy()
    meta: dict[str, Any] = dict(tables.meta)
    meta.update(chandelier_meta(rule, has_compartments(tables), int(result["chandelier"].sum())))
    return replace(tables, neurons=neurons, meta=meta)
