"""What the dataset and neuron pages show, read from the graph: counts, the type × type matrix,
synapses per connection, degrees (from the version's summary kept at ingest,
`graphdb.summary`), a neuron's partners and its inputs by compartment. Each is a plain table
(pandas) so pages, JSON answers, plots and tests share the numbers. Results are cached per
dataset version key (a version never changes once loaded)."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import neo4j
import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import leaves_list, linkage

from connectome_query.graphdb import summary
from connectome_query.graphql_api.db import read

NEURON = """
MATCH (n:Neuron {dataset: $key, bodyId: $bodyId})
RETURN n.bodyId AS bodyId, n.type AS type, n.instance AS instance, n.cellClass AS cellClass
"""

PARTNERS = {
    "upstream": """
MATCH (p:Neuron)-[c:ConnectsTo]->(n:Neuron {dataset: $key, bodyId: $bodyId})
RETURN p.bodyId AS partner, coalesce(p.type, '(untyped)') AS type, c.weight AS weight
ORDER BY weight DESC, partner""",
    "downstream": """
MATCH (n:Neuron {dataset: $key, bodyId: $bodyId})-[c:ConnectsTo]->(p:Neuron)
RETURN p.bodyId AS partner, coalesce(p.type, '(untyped)') AS type, c.weight AS weight
ORDER BY weight DESC, partner""",
}

INPUT_COMPARTMENTS = """
MATCH (:Neuron)-[:Contains]->(ss:SynapseSet)-[:SynapsesTo]->(n:Neuron {dataset: $key,
                                                                  bodyId: $bodyId})
MATCH (ss)-[:Contains]->(s:Synapse)
RETURN coalesce(s.postCompartment, 'unknown') AS compartment, count(s) AS synapses
ORDER BY synapses DESC, compartment
"""

MAX_TYPES = 60
"""The heatmap shows at most this many types (those with the most synapses in and out)."""


class VersionCache:
    """Computed tables per (dataset version key, what): bounded, least recently used out."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self.items: OrderedDict[tuple[Any, ...], Any] = OrderedDict()

    async def get(self, key: tuple[Any, ...], make: Callable[[], Awaitable[Any]]) -> Any:
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        value = await make()
        self.items[key] = value
        while len(self.items) > self.size:
            self.items.popitem(last=False)
        return value


async def frame(driver: neo4j.AsyncDriver, database: str, cypher: str,
                params: dict[str, Any], columns: list[str]) -> pd.DataFrame:
    rows = await read(driver, cypher, params, database=database)
    return pd.DataFrame(rows, columns=columns)


async def version_summary(driver: neo4j.AsyncDriver, database: str, key: str,
                          ) -> tuple[dict[str, Any], str]:
    """Version `key`'s summary and where it came from: the one kept at ingest, else (a version
    loaded before summaries) the same reads run now, which at FlyWire size may pass the query
    limit."""
    rows = await read(driver, summary.READ, {"key": key}, database=database)
    kept = dict(rows[0]["s"]) if rows else None
    if summary.usable(kept):
        assert kept is not None
        return kept, f"totals kept at ingest ({kept.get('computedAt')})"
    parts = {part: await read(driver, cypher, {"key": key}, database=database)
             for part, cypher in summary.QUERIES.items()}
    parts["typePairs"] = await read(driver, summary.PAIRS,
                                    {"key": key, "types": summary.kept_types(parts)},
                                    database=database)
    why = "none was kept at ingest" if kept is None else "the kept one has an older layout"
    return summary.from_rows(parts), (f"totals computed now: {why}; the next load of any "
                                      "dataset keeps one")


def summary_tables(props: dict[str, Any]) -> dict[str, Any]:
    """The summary's lists as the page's tables: counts, synapses per type (in + out), type
    pairs among the types with most, synapses per connection, neurons per out- and in-degree,
    strongest connections."""
    return {
        "typeTotals": pd.Series(props["typeSynapses"], index=props["typeNames"], dtype=np.int64,
                                name="synapses").sort_index(),
        "counts": {k: int(props[k]) for k in summary.COUNTS},
        "pairs": pd.DataFrame({"preType": props["preTypes"], "postType": props["postTypes"],
                               "synapses": props["pairSynapses"],
                               "connections": props["pairConnections"]}),
        "weights": pd.DataFrame({"weight": props["weightValues"],
                                 "connections": props["weightConnections"]}, dtype=np.int64),
        "outDegrees": pd.DataFrame({"degree": props["outDegreeValues"],
                                    "neurons": props["outDegreeNeurons"]}, dtype=np.int64),
        "inDegrees": pd.DataFrame({"degree": props["inDegreeValues"],
                                   "neurons": props["inDegreeNeurons"]}, dtype=np.int64),
        "top": pd.DataFrame(json.loads(props["topConnections"]),
                            columns=["pre", "preType", "post", "postType", "weight"]),
    }


def type_matrix(pairs: pd.DataFrame, max_types: int = MAX_TYPES,
                totals: pd.Series | None = None) -> pd.DataFrame:
    """Synapses from each presynaptic type (rows) to each postsynaptic type (columns), for the
    `max_types` types with the most synapses (`totals`, in + out per type; default: summed from
    `pairs`, which must then hold every pair), rows and columns ordered by average-linkage
    clustering of log(1 + synapses), so blocks of related types sit together."""
    if pairs.empty:
        return pd.DataFrame(dtype=np.int64)
    if totals is None:
        totals = (pairs.groupby("preType")["synapses"].sum()
                  .add(pairs.groupby("postType")["synapses"].sum(), fill_value=0))
    totals = totals.sort_index()
    keep = sorted(totals.sort_values(ascending=False, kind="stable").index[:max_types])
    kept = pairs[pairs["preType"].isin(keep) & pairs["postType"].isin(keep)]
    matrix = (kept.pivot_table(index="preType", columns="postType", values="synapses",
                               aggfunc="sum", fill_value=0)
              .reindex(index=keep, columns=keep, fill_value=0).astype(np.int64))
    if len(keep) > 2:
        logged = np.log1p(matrix.to_numpy(np.float64))
        rows = leaves_list(linkage(logged, "average"))
        cols = leaves_list(linkage(logged.T, "average"))
        matrix = matrix.iloc[rows, cols]
    return matrix


def partner_types(partners: pd.DataFrame) -> pd.DataFrame:
    """Synapses and partner counts per partner type, most synapses first."""
    if partners.empty:
        return pd.DataFrame(columns=["type", "synapses", "partners"])
    grouped = partners.groupby("type").agg(synapses=("weight", "sum"),
                                           partners=("partner", "count")).reset_index()
    return grouped.sort_values(["synapses", "type"], ascending=[False, True],
                               kind="stable").reset_index(drop=True)
