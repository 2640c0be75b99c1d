"""The in-memory form every reader produces and the loader consumes.

Readers only parse (navis-style); checks that need the whole dataset (duplicate ids, connections
to unknown neurons, summary counts) live here as pure functions on DataFrames.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from connectome_query.ingest.errors import IngestError

NEURON_COLUMNS: dict[str, str] = {
    "bodyId": "int64",
    "instance": "object",
    "type": "object",
    "cellClass": "object",
    "neurotransmitter": "object",
    "status": "object",
    "somaX": "float64",
    "somaY": "float64",
    "somaZ": "float64",
    "size": "float64",
}
"""Neuron table: `bodyId` is required; the rest may be missing (null)."""

CONNECTION_COLUMNS: dict[str, str] = {
    "bodyIdPre": "int64",
    "bodyIdPost": "int64",
    "weight": "int64",
    "kind": "object",
    "roiInfo": "object",
}
"""Connection table: one row per (pre, post, kind); `kind` is "chemical" or "electrical"."""

SYNAPSE_COLUMNS: dict[str, str] = {
    "synapseId": "int64",
    "bodyIdPre": "int64",
    "bodyIdPost": "int64",
    "x": "float64",
    "y": "float64",
    "z": "float64",
    "size": "float64",
    "confidence": "float64",
    "postCompartment": "object",
    "roi": "object",
}
"""Synapse table (optional): one row per chemical synapse, locations in nm."""


@dataclass
class ConnectomeTables:
    """A whole dataset, ready to load."""

    source: str
    neurons: pd.DataFrame
    connections: pd.DataFrame
    synapses: pd.DataFrame | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def body_id_for_name(name: str) -> int:
    """A stable integer id for a cell known only by name (C. elegans): 53 bits of BLAKE2b.

    53 bits keep ids exact in JavaScript clients; the loader checks that no two names collide.
    """
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 11


def undirected_gap_junctions(edges: pd.DataFrame) -> pd.DataFrame:
    """Collapse directed gap-junction listings to one row per unordered pair.

    Published tables list each gap junction once per direction; where the two directions
    disagree, the larger count is kept (both rows describe the same junctions).
    """
    a = edges["bodyIdPre"].to_numpy()
    b = edges["bodyIdPost"].to_numpy()
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    pairs = pd.DataFrame({"bodyIdPre": lo, "bodyIdPost": hi, "weight": edges["weight"].to_numpy()})
    out = pairs.groupby(["bodyIdPre", "bodyIdPost"])["weight"].max().reset_index()
    out["kind"] = "electrical"
    return out


def validate(tables: ConnectomeTables) -> None:
    """Whole-dataset checks; raise IngestError naming the first problem."""
    src = tables.source
    neurons, conns = tables.neurons, tables.connections
    if neurons.empty:
        raise IngestError(src, "no neurons: the input holds no rows")
    dup = neurons["bodyId"].duplicated(keep=False)
    if dup.any():
        ids = sorted(set(neurons.loc[dup, "bodyId"].tolist()))[:5]
        raise IngestError(src, f"duplicate bodyId values {ids}", column="bodyId")
    known = set(neurons["bodyId"].tolist())
    for col in ("bodyIdPre", "bodyIdPost"):
        missing = ~conns[col].isin(known)
        if missing.any():
            raise IngestError(
                src,
                f"connection to unknown neuron {int(conns.loc[missing, col].iloc[0])}",
                column=col,
            )
    if (conns["weight"] < 0).any():
        raise IngestError(src, "negative weight", column="weight")
    bad_kind = ~conns["kind"].isin(["chemical", "electrical"])
    if bad_kind.any():
        raise IngestError(src, f"unknown synapse kind {conns.loc[bad_kind, 'kind'].iloc[0]!r}",
                          column="kind")
    if conns.duplicated(["bodyIdPre", "bodyIdPost", "kind"]).any():
        raise IngestError(src, "the same connection is listed twice", column="bodyIdPre")
    syn = tables.synapses
    if syn is not None and not syn.empty:
        if syn["synapseId"].duplicated().any():
            first = int(syn.loc[syn["synapseId"].duplicated(), "synapseId"].iloc[0])
            raise IngestError(src, f"duplicate synapse id {first}", column="synapseId")
        for col in ("bodyIdPre", "bodyIdPost"):
            if (~syn[col].isin(known)).any():
                raise IngestError(src, "synapse on an unknown neuron", column=col)


def neuron_summaries(tables: ConnectomeTables) -> pd.DataFrame:
    """Per-neuron synapse totals, neuPrint-style: `pre`/`post` (chemical synapses out/in),
    `synapseCount` (their sum, which Bloom sizes nodes by),
    `upstream`/`downstream` (partners in/out) and `gapJunctions` (electrical synapses)."""
    conns = tables.connections
    chem = conns[conns["kind"] == "chemical"]
    elec = conns[conns["kind"] == "electrical"]
    ids = tables.neurons["bodyId"]
    out = pd.DataFrame({"bodyId": ids})
    out["pre"] = ids.map(chem.groupby("bodyIdPre")["weight"].sum()).fillna(0).astype("int64")
    out["post"] = ids.map(chem.groupby("bodyIdPost")["weight"].sum()).fillna(0).astype("int64")
    out["downstream"] = ids.map(chem.groupby("bodyIdPre").size()).fillna(0).astype("int64")
    out["upstream"] = ids.map(chem.groupby("bodyIdPost").size()).fillna(0).astype("int64")
    out["synapseCount"] = out["pre"] + out["post"]
    # A self-coupled cell's junctions count once; others count on both partners.
    ends = pd.concat(
        [elec[["bodyIdPre", "weight"]].rename(columns={"bodyIdPre": "b"}),
         elec.loc[elec["bodyIdPre"] != elec["bodyIdPost"], ["bodyIdPost", "weight"]]
         .rename(columns={"bodyIdPost": "b"})]
    )
    out["gapJunctions"] = ids.map(ends.groupby("b")["weight"].sum()).fillna(0).astype("int64")
    return out
