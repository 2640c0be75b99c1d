"""A version's summary: the totals its dataset page shows, kept when the load finishes.

Summing every connection by type pair at read time passes the API's query limit at FlyWire size
(139k neurons, 3.7 M connections), so `catalog.publish` (the one place every load path, online
loader or offline importer, finishes) writes one `VersionSummary` node per version first: the
counts, synapses in and out of each type, the synapses and connections per (pre type, post
type) pair among the `PAIR_TYPES` types with most synapses (a FlyWire-size graph has ~670k type
pairs), connections per weight, neurons per in- and out-degree, and the strongest connections.
It carries the version's `dataset` key, so deleting the version deletes it. `FORMAT` names its
layout: a summary of another format (or none, for versions loaded before summaries) counts as
absent, and the page computes the same numbers live (`QUERIES`, `kept_types`, `PAIRS`,
`from_rows`) and says so.
"""

from __future__ import annotations

import json
from typing import Any

import neo4j

from connectome_query.schema.model import COMPLETE, CONNECTS_TO, META, NEURON

LABEL = "VersionSummary"
FORMAT = 1
"""The layout of the summary's properties; bumped when it changes."""
TOP_LIMIT = 20
PAIR_TYPES = 200
"""Type pairs are kept among this many types, those with most synapses (in + out)."""

QUERIES: dict[str, str] = {
    "counts": f"""
MATCH (n:{NEURON}) WHERE n.dataset = $key
WITH count(n) AS neurons, count(n.type) AS typed, count(DISTINCT n.type) AS types
OPTIONAL MATCH (a:{NEURON})-[c:{CONNECTS_TO}]->(:{NEURON}) WHERE a.dataset = $key
RETURN neurons, typed, types, count(c) AS connections, coalesce(sum(c.weight), 0) AS synapses
""",
    "typeTotals": f"""
MATCH (a:{NEURON})-[c:{CONNECTS_TO}]->(b:{NEURON})
WHERE a.dataset = $key AND a.type IS NOT NULL AND b.type IS NOT NULL
UNWIND [a.type, b.type] AS type
RETURN type, sum(c.weight) AS synapses ORDER BY type
""",
    "weights": f"""
MATCH (a:{NEURON})-[c:{CONNECTS_TO}]->(:{NEURON}) WHERE a.dataset = $key
RETURN c.weight AS weight, count(*) AS connections ORDER BY weight
""",
    "outDegrees": f"""
MATCH (n:{NEURON}) WHERE n.dataset = $key
WITH COUNT {{ (n)-[:{CONNECTS_TO}]->(:{NEURON}) }} AS degree
RETURN degree, count(*) AS neurons ORDER BY degree
""",
    "inDegrees": f"""
MATCH (n:{NEURON}) WHERE n.dataset = $key
WITH COUNT {{ (:{NEURON})-[:{CONNECTS_TO}]->(n) }} AS degree
RETURN degree, count(*) AS neurons ORDER BY degree
""",
    "top": f"""
MATCH (a:{NEURON})-[c:{CONNECTS_TO}]->(b:{NEURON}) WHERE a.dataset = $key
RETURN a.bodyId AS pre, a.type AS preType, b.bodyId AS post, b.type AS postType,
       c.weight AS weight
ORDER BY weight DESC, pre, post LIMIT {TOP_LIMIT}
""",
}
"""Each part of the summary as a read over version `$key`; `from_rows` joins their rows."""

PAIRS = f"""
MATCH (a:{NEURON})-[c:{CONNECTS_TO}]->(b:{NEURON})
WHERE a.dataset = $key AND a.type IN $types AND b.type IN $types
RETURN a.type AS preType, b.type AS postType, sum(c.weight) AS synapses,
       count(c) AS connections
ORDER BY preType, postType
"""
"""Synapses and connections per type pair among `$types` (`kept_types`)."""

COUNTS = ("neurons", "typed", "types", "connections", "synapses")

READ = f"MATCH (s:{LABEL} {{dataset: $key}}) RETURN properties(s) AS s"
WRITE = f"""
MERGE (s:{LABEL} {{dataset: $key}})
SET s = $props, s.dataset = $key, s.computedAt = datetime()
"""


def _column(rows: list[dict[str, Any]], name: str, kind: type) -> list[Any]:
    return [kind(r[name]) for r in rows]


def kept_types(rows: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The `PAIR_TYPES` types with most synapses in and out (ties: by name)."""
    ranked = sorted(rows["typeTotals"], key=lambda r: (-int(r["synapses"]), str(r["type"])))
    return [str(r["type"]) for r in ranked[:PAIR_TYPES]]


def from_rows(rows: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The summary's properties (flat lists and numbers, as a node stores them) from each
    query's rows."""
    counts = rows["counts"][0] if rows["counts"] else {}
    pairs, weights, totals = rows["typePairs"], rows["weights"], rows["typeTotals"]
    out: dict[str, Any] = {"format": FORMAT}
    out.update({k: int(counts.get(k) or 0) for k in COUNTS})
    out.update({
        "typeNames": _column(totals, "type", str), "typeSynapses": _column(totals, "synapses", int),
        "preTypes": _column(pairs, "preType", str), "postTypes": _column(pairs, "postType", str),
        "pairSynapses": _column(pairs, "synapses", int),
        "pairConnections": _column(pairs, "connections", int),
        "weightValues": _column(weights, "weight", int),
        "weightConnections": _column(weights, "connections", int),
        "topConnections": json.dumps(rows["top"]),
    })
    for side in ("out", "in"):
        degrees = rows[f"{side}Degrees"]
        out[f"{side}DegreeValues"] = _column(degrees, "degree", int)
        out[f"{side}DegreeNeurons"] = _column(degrees, "neurons", int)
    return out


def compute(driver: neo4j.Driver, key: str, database: str = "neo4j") -> dict[str, Any]:
    """Version `key`'s summary, read from its graph."""
    def run(cypher: str, **params: Any) -> list[dict[str, Any]]:
        records, _, _ = driver.execute_query(cypher, key=key, **params, database_=database,
                                             routing_=neo4j.RoutingControl.READ)
        return [r.data() for r in records]

    rows = {part: run(cypher) for part, cypher in QUERIES.items()}
    rows["typePairs"] = run(PAIRS, types=kept_types(rows))
    return from_rows(rows)


def keep(driver: neo4j.Driver, key: str, database: str = "neo4j") -> dict[str, Any]:
    """Compute version `key`'s summary and store it beside the version (replacing any)."""
    props = compute(driver, key, database)
    driver.execute_query(WRITE, key=key, props=props, database_=database)
    return props


def usable(props: dict[str, Any] | None) -> bool:
    """Whether a stored summary has this code's layout."""
    return props is not None and props.get("format") == FORMAT


def read(driver: neo4j.Driver, key: str, database: str = "neo4j") -> dict[str, Any] | None:
    """Version `key`'s stored summary; None when it has none of this code's layout."""
    records, _, _ = driver.execute_query(READ, key=key, database_=database,
                                         routing_=neo4j.RoutingControl.READ)
    props = dict(records[0]["s"]) if records else None
    return props if usable(props) else None


MISSING = f"""
MATCH (m:{META}) WHERE m.status = '{COMPLETE}'
OPTIONAL MATCH (s:{LABEL} {{dataset: m.dataset}})
WITH m, s WHERE s IS NULL OR coalesce(s.format, 0) <> $format
RETURN m.dataset AS key ORDER BY key
"""


def keep_missing(driver: neo4j.Driver, database: str = "neo4j") -> list[str]:
    """Keep a summary for every complete version without one of this layout (loaded before
    summaries, or by older code); their keys."""
    records, _, _ = driver.execute_query(MISSING, format=FORMAT, database_=database)
    keys = [r["key"] for r in records]
    for key in keys:
        keep(driver, key, database)
    return keys
