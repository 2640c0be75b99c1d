"""Comparing two datasets (or two versions of one): which connections appear, strengthen,
weaken or vanish, and how the weights between cell types change.

Neurons are matched by name (`instance`, as for C. elegans cells), by cell name ignoring leading
zeros in its number (`cell`: AS01 = AS1, as C. elegans tables spell them either way), by
`bodyId` (versions of one reconstruction), or through a mapping of A's names onto B's. A
connection is keyed by the matched names of its two ends (gap junctions by the unordered pair).
Both datasets are read whole (bounded by `ExportLimits.max_edges` connections each); the
comparison itself is pandas.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from connectome_query.export.request import ExportError

MATCHES = ("name", "cell", "bodyId")
KINDS = {"chemical": "ConnectsTo", "electrical": "GapJunction", "monoamine": "Monoamine",
         "neuropeptide": "Neuropeptide"}

NEURONS = """
MATCH (n:Neuron {dataset: $key})
RETURN n.bodyId AS bodyId, n.instance AS name, n.type AS type
"""


def edges_query(kind: str) -> str:
    """Cypher for the connections of one kind (`$key`, `$minWeight`, `$limit`)."""
    if kind not in KINDS:
        raise ExportError(f"synapse type {kind!r} is not one of {', '.join(KINDS)}")
    return f"""
MATCH (a:Neuron {{dataset: $key}})-[c:{KINDS[kind]}]->(b:Neuron)
WHERE c.weight >= $minWeight
RETURN a.bodyId AS pre, b.bodyId AS post, c.weight AS weight
LIMIT $limit
"""


@dataclass(frozen=True)
class CompareRequest:
    """What to compare: datasets `a` and `b` (their graph keys resolved by the caller)."""

    a: str
    b: str
    synapse_type: str = "chemical"
    match: str = "name"
    mapping: Mapping[str, str] | None = None
    """A's neuron names -> B's (names not in it are matched as they are)."""
    min_weight: int = 1

    def check(self) -> CompareRequest:
        if self.synapse_type not in KINDS:
            raise ExportError(f"synapseType must be one of {', '.join(KINDS)}")
        if self.match not in MATCHES:
            raise ExportError(f"match must be one of {', '.join(MATCHES)}")
        if self.mapping is not None and self.match == "bodyId":
            raise ExportError("a name mapping needs match = name or cell")
        if isinstance(self.min_weight, bool) or not 1 <= self.min_weight < 2**63:
            raise ExportError("minWeight must be a whole number from 1 to 2^63-1")
        return self


@dataclass
class Side:
    """One dataset as read: neurons (bodyId, name, type) and connections (pre, post, weight)."""

    neurons: pd.DataFrame
    edges: pd.DataFrame


@dataclass
class Comparison:
    """The result: `edges` has one row per connection in either dataset (`pre`, `post`,
    `weightA`, `weightB` (0 where absent), `change` = B - A, `status`: both / onlyA / onlyB,
    `matchedEnds`: both ends are neurons of both datasets); `types` one row per
    (preType, postType) with summed weights."""

    neurons_a: int
    neurons_b: int
    matched: list[str]
    only_a_neurons: list[str]
    only_b_neurons: list[str]
    edges: pd.DataFrame
    types: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)


def _keys(side: Side, match: str, mapping: Mapping[str, str] | None, label: str) -> pd.Series:
    """The matching key of each neuron (bodyId -> key)."""
    n = side.neurons
    if match == "bodyId":
        return pd.Series(n["bodyId"].astype(str).to_numpy(), index=n["bodyId"].to_numpy())
    missing = n["name"].isna()
    if missing.any():
        body = int(n.loc[missing, "bodyId"].iloc[0])
        raise ExportError(f"dataset {label}: neuron {body} has no name (instance); match by "
                          "bodyId instead")
    names = n["name"].astype(str)
    if mapping:
        names = names.map(lambda s: mapping.get(s, s))
    if match == "cell":
        names = names.map(unpadded)
    twice = names[names.duplicated()]
    if len(twice):
        raise ExportError(f"dataset {label}: the name {twice.iloc[0]!r} belongs to more than "
                          "one neuron; match by bodyId or map the names")
    return pd.Series(names.to_numpy(), index=n["bodyId"].to_numpy())


def unpadded(name: str) -> str:
    """A cell name without leading zeros in its number (VC04 -> VC4, MDL01 -> MDL1)."""
    return re.sub(r"(?<=[A-Za-z])0+(?=\d)", "", name)


def _keyed_edges(side: Side, keys: pd.Series, undirected: bool) -> pd.DataFrame:
    e = side.edges
    pre = keys.reindex(e["pre"].to_numpy()).to_numpy()
    post = keys.reindex(e["post"].to_numpy()).to_numpy()
    if undirected:
        lo = np.where(pre <= post, pre, post)
        post = np.where(pre <= post, post, pre)
        pre = lo
    out = pd.DataFrame({"pre": pre, "post": post, "weight": e["weight"].to_numpy()})
    if not undirected:
        return out
    return pd.DataFrame(out.groupby(["pre", "post"], as_index=False)["weight"].max())


def _pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x.astype(np.float64), y.astype(np.float64))[0, 1])


def compare(a: Side, b: Side, req: CompareRequest) -> Comparison:
    """Compare two datasets as read (`Side`s) per `req`."""
    req.check()
    ka = _keys(a, req.match, req.mapping, req.a)
    kb = _keys(b, req.match, None, req.b)
    undirected = req.synapse_type == "electrical"
    ea = _keyed_edges(a, ka, undirected).rename(columns={"weight": "weightA"})
    eb = _keyed_edges(b, kb, undirected).rename(columns={"weight": "weightB"})
    edges = ea.merge(eb, on=["pre", "post"], how="outer", indicator=True)
    edges["status"] = edges.pop("_merge").map(
        {"both": "both", "left_only": "onlyA", "right_only": "onlyB"}).astype(str)
    edges[["weightA", "weightB"]] = edges[["weightA", "weightB"]].fillna(0).astype(np.int64)
    edges["change"] = edges["weightB"] - edges["weightA"]
    shared = set(ka.to_numpy()) & set(kb.to_numpy())
    edges["matchedEnds"] = edges["pre"].isin(shared) & edges["post"].isin(shared)
    edges = edges.sort_values(["pre", "post"], kind="stable").reset_index(drop=True)
    types = _type_summary(edges, a, b, ka, kb)
    both = edges[edges["status"] == "both"]
    matched = edges[edges["matchedEnds"]]
    summary = {
        "connectionsA": len(ea), "connectionsB": len(eb), "both": len(both),
        "onlyA": int((edges["status"] == "onlyA").sum()),
        "onlyB": int((edges["status"] == "onlyB").sum()),
        "onlyAMatched": int((matched["status"] == "onlyA").sum()),
        "onlyBMatched": int((matched["status"] == "onlyB").sum()),
        "stronger": int((both["change"] > 0).sum()), "weaker": int((both["change"] < 0).sum()),
        "weightA": int(edges["weightA"].sum()), "weightB": int(edges["weightB"].sum()),
        "correlationShared": _pearson(both["weightA"].to_numpy(), both["weightB"].to_numpy()),
        "correlationMatched": _pearson(matched["weightA"].to_numpy(),
                                       matched["weightB"].to_numpy()),
    }
    return Comparison(
        neurons_a=len(ka), neurons_b=len(kb), matched=sorted(shared),
        only_a_neurons=sorted(set(ka.to_numpy()) - shared),
        only_b_neurons=sorted(set(kb.to_numpy()) - shared),
        edges=edges, types=types, summary=summary)


def _type_summary(edges: pd.DataFrame, a: Side, b: Side, ka: pd.Series,
                  kb: pd.Series) -> pd.DataFrame:
    """Weights summed per (preType, postType); a neuron's type is A's, else B's, else its key."""
    type_of: dict[Any, Any] = {}
    for side, keys in ((b, kb), (a, ka)):  # A's types win
        types = side.neurons["type"].to_numpy()
        for key, t in zip(keys.to_numpy(), types, strict=True):
            if isinstance(t, str) and t:
                type_of[key] = t
    frame = pd.DataFrame({
        "preType": [type_of.get(k, k) for k in edges["pre"]],
        "postType": [type_of.get(k, k) for k in edges["post"]],
        "weightA": edges["weightA"], "weightB": edges["weightB"],
        "connectionsA": (edges["weightA"] > 0).astype(np.int64),
        "connectionsB": (edges["weightB"] > 0).astype(np.int64)})
    out = frame.groupby(["preType", "postType"], as_index=False).sum()
    out["change"] = out["weightB"] - out["weightA"]
    return out.sort_values(["preType", "postType"], kind="stable").reset_index(drop=True)


def _frames(neurons: list[Any], edges: list[Any]) -> Side:
    n = pd.DataFrame([dict(r) for r in neurons], columns=["bodyId", "name", "type"])
    e = pd.DataFrame([dict(r) for r in edges], columns=["pre", "post", "weight"])
    return Side(n.astype({"bodyId": np.int64}),
                e.astype({"pre": np.int64, "post": np.int64, "weight": np.int64}))


def _check_size(rows: list[Any], max_edges: int, label: str) -> None:
    if len(rows) > max_edges:
        raise ExportError(f"dataset {label} has more than {max_edges:,} connections of this "
                          "type (CONNECTOME_EXPORT_MAX_EDGES); raise minWeight", status=413)


Read = Callable[[str, dict[str, Any]], list[Any]]
AsyncRead = Callable[[str, dict[str, Any]], Awaitable[list[dict[str, Any]]]]


def read_side(read: Read, key: str, label: str, req: CompareRequest, max_edges: int) -> Side:
    """One dataset's neurons and connections through a synchronous reader."""
    params = {"key": key, "minWeight": req.min_weight, "limit": max_edges + 1}
    edges = read(edges_query(req.synapse_type), params)
    _check_size(edges, max_edges, label)
    return _frames(read(NEURONS, {"key": key}), edges)


async def read_side_async(read: AsyncRead, key: str, label: str, req: CompareRequest,
                          max_edges: int) -> Side:
    """`read_side` through the API's async reader."""
    params = {"key": key, "minWeight": req.min_weight, "limit": max_edges + 1}
    edges = await read(edges_query(req.synapse_type), params)
    _check_size(edges, max_edges, label)
    return _frames(await read(NEURONS, {"key": key}), edges)


def read_mapping(path: str) -> dict[str, str]:
    """A CSV with columns `a` (a name in dataset A) and `b` (the same cell's name in B); an
    ExportError names the row of a repeated or empty name."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise ExportError(f"{path}: not a readable CSV ({exc})") from None
    for column in ("a", "b"):
        if column not in frame.columns:
            raise ExportError(f"{path}: missing required column {column!r} (columns present: "
                              f"{', '.join(map(str, frame.columns)) or 'none'})")
    a, b = frame["a"].str.strip(), frame["b"].str.strip()
    for column, values in (("a", a), ("b", b)):
        bad = values.eq("") | values.duplicated()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0]) + 2
            what = "empty" if values[bad].iloc[0] == "" else f"{values[bad].iloc[0]!r} repeated"
            raise ExportError(f"{path}, row {row}, column {column!r}: name {what}")
    return dict(zip(a, b, strict=True))
