"""What a version needs before neuPrint's clients can read it: its own labels, and the
neuPrint properties they expect (`roiInfo` on neurons, connections and `Meta`, ROI flags).

Every node of version `key` gets `scope_label(key, L)` beside each of its labels `L`, so a
query that starts from those labels reads that version only (relationships never join two
versions). The neuPrint route of the API rewrites `:Neuron` to the version's label and then
checks Neo4j's plan (`graphql_api.neuprint.scope`). `roiInfo` is derived from the synapses'
`roi`: `{"ROI": {"pre": n, "post": m}}` per neuron, `{}` where no synapse names a ROI; a neuron
also gets one boolean property per ROI it has synapses in, as neuPrint stores it.

neuPrint keeps two nodes per synapse, `PreSyn` and `PostSyn`, each in a `SynapseSet` of its own
neuron, and its clients read a neuron's inputs from its `PostSyn` nodes. Our `Synapse` node is
the presynaptic side (`type: 'pre'`, label `PreSyn` of the version); `add_synapse_sides` writes
the postsynaptic side (`type: 'post'`, the same properties) with version labels only, so our own
queries, which start from the plain labels, never meet it.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from typing import Any

import neo4j

from connectome_query.schema.model import (
    CONNECTS_TO,
    CONTAINS,
    META,
    NEURON,
    POST_SYN,
    PRE_SYN,
    SCOPED_LABELS,
    SYNAPSE,
    SYNAPSE_SET,
    SYNAPSES_TO,
    scope_label,
)

SCOPED = "scopeLabels"
"""Meta property: true once the version's nodes carry their scope labels."""
SIDES = "synapseSides"
"""Meta property: true once the version's synapses have neuPrint's postsynaptic side."""

_ROI_COUNTS = f"""
MATCH (n:{NEURON} {{dataset: $key}}) WHERE n.bodyId > $after
WITH n ORDER BY n.bodyId LIMIT $limit
CALL (n) {{
  OPTIONAL MATCH (n)-[:{CONTAINS}]->(:{SYNAPSE_SET})-[:{CONTAINS}]->(s:{SYNAPSE})
  WITH s.roi AS roi, count(s) AS k WHERE roi IS NOT NULL
  RETURN collect([roi, k]) AS pre
}}
CALL (n) {{
  OPTIONAL MATCH (n)<-[:{SYNAPSES_TO}]-(:{SYNAPSE_SET})-[:{CONTAINS}]->(s:{SYNAPSE})
  WITH s.roi AS roi, count(s) AS k WHERE roi IS NOT NULL
  RETURN collect([roi, k]) AS post
}}
RETURN n.bodyId AS body, pre, post
"""
"""Synapses per ROI on each side of a page of neurons (by bodyId): a page at a time, so that no
transaction holds the counts of a whole FlyWire-size dataset (Neo4j's transaction memory cap)."""

_SET_NEURON_ROIS = f"""
UNWIND $rows AS r
MATCH (n:{NEURON} {{dataset: $key, bodyId: r.bodyId}})
SET n.roiInfo = r.roiInfo, n += r.flags
"""

_DEFAULTS = (
    f"""MATCH (n:{NEURON} {{dataset: $key}}) WHERE n.roiInfo IS NULL
        CALL (n) {{ SET n.roiInfo = '{{}}' }} IN TRANSACTIONS OF 10000 ROWS""",
    f"""MATCH (:{NEURON} {{dataset: $key}})-[c:{CONNECTS_TO}]->() WHERE c.roiInfo IS NULL
        CALL (c) {{ SET c.roiInfo = '{{}}' }} IN TRANSACTIONS OF 10000 ROWS""",
)


SYNAPSE_PROPERTIES = frozenset({"dataset", "synapseId", "type", "preBodyId", "postBodyId",
                                "location", "size", "confidence", "postCompartment", "roi"})
"""Synapse properties a ROI flag never overwrites."""



def _synapse_flags(key: str) -> str:
    """neuPrint marks a synapse's ROI as a boolean property named after it (on both sides of
    the synapse where they exist: they share the version's `Synapse` label)."""
    return f"""
MATCH (s:`{scope_label(key, SYNAPSE)}` {{dataset: $key}})
WHERE s.roi IS NOT NULL AND NOT s.roi IN $reserved
CALL (s) {{ SET s[s.roi] = true }} IN TRANSACTIONS OF 10000 ROWS
"""


def _label_statement(label: str) -> str:
    return (f"MATCH (n:{label} {{dataset: $key}}) "
            "CALL (n) { SET n:$($scoped) } IN TRANSACTIONS OF 10000 ROWS")


_SYNAPSE_SIDES = f"""
MATCH (ss:{SYNAPSE_SET} {{dataset: $key}})-[:{SYNAPSES_TO}]->(b:{NEURON})
WHERE NOT EXISTS {{ (ss)-[:{CONNECTS_TO}]->() }}
CALL (ss, b) {{
  CREATE (b)-[:{CONTAINS}]->(ps:$($set) {{dataset: $key, preBodyId: ss.preBodyId,
                                          postBodyId: ss.postBodyId}})
  CREATE (ss)-[:{CONNECTS_TO}]->(ps)
  WITH ss, ps
  MATCH (ss)-[:{CONTAINS}]->(s:{SYNAPSE})
  SET s.type = 'pre', s:$($pre)
  CREATE (s)-[:{SYNAPSES_TO}]->(p:$($post))<-[:{CONTAINS}]-(ps)
  SET p = properties(s), p.type = 'post'
}} IN TRANSACTIONS OF 200 ROWS
"""
"""Per synapse set (A -> B): B's set of the postsynaptic sides, `(A's set)-[:ConnectsTo]->(B's
set)`, and per synapse `(pre)-[:SynapsesTo]->(post)`, as neuPrint links them. Sets that already
have their other side are skipped, so an interrupted pass can run again."""


def add_synapse_sides(driver: neo4j.Driver, key: str, database: str = "neo4j") -> None:
    """Write neuPrint's postsynaptic side of every synapse of version `key` (idempotent)."""
    with driver.session(database=database) as session:
        session.run(_SYNAPSE_SIDES, key=key, set=[scope_label(key, SYNAPSE_SET)],
                    pre=[scope_label(key, PRE_SYN)],
                    post=[scope_label(key, SYNAPSE), scope_label(key, POST_SYN)]).consume()


def add_scope_labels(driver: neo4j.Driver, key: str, database: str = "neo4j",
                     labels: tuple[str, ...] = SCOPED_LABELS) -> None:
    """Give every node of version `key` with one of `labels` its scope labels (idempotent)."""
    with driver.session(database=database) as session:
        for label in labels:
            session.run(_label_statement(label), key=key,
                        scoped=scope_label(key, label)).consume()


SCOPED_INDEXES = ((NEURON, "bodyId"), (NEURON, "type"), (NEURON, "instance"))
"""Lookups neuPrint's clients make on one version (`NeuronCriteria(bodyId=...)`, `type=`,
`instance=`): indexed on the version's own label, as neuPrint indexes `hemibrain_Neuron`."""


def scoped_index_names(key: str) -> list[str]:
    """The names of version `key`'s own indexes."""
    return [f"scoped_{key}_{label}_{prop}" for label, prop in SCOPED_INDEXES]


def add_scoped_indexes(driver: neo4j.Driver, key: str, database: str = "neo4j",
                       wait_s: int = 600) -> None:
    """Create (if missing) and wait for the indexes of `SCOPED_INDEXES` on version `key`."""
    with driver.session(database=database) as session:
        for name, (label, prop) in zip(scoped_index_names(key), SCOPED_INDEXES, strict=True):
            session.run(f"CREATE INDEX `{name}` IF NOT EXISTS "
                        f"FOR (n:`{scope_label(key, label)}`) ON (n.{prop})").consume()
        session.run("CALL db.awaitIndexes($s)", s=wait_s).consume()


def neuprint_properties(driver: neo4j.Driver, key: str, database: str = "neo4j",
                        batch: int = 5000) -> dict[str, Any]:
    """Write `roiInfo` (and ROI flags) on the neurons and connections of version `key`; return
    the neuPrint fields of its `Meta` (roiInfo, primaryRois, superLevelRois, roiHierarchy,
    neuronProperties, totals, uuid)."""
    per_neuron: dict[int, dict[str, dict[str, int]]] = defaultdict(dict)
    totals: dict[str, dict[str, int]] = defaultdict(lambda: {"pre": 0, "post": 0})
    after = -(2**63)
    while True:
        records, _, _ = driver.execute_query(_ROI_COUNTS, key=key, after=after, limit=batch,
                                             database_=database,
                                             routing_=neo4j.RoutingControl.READ)
        for rec in records:
            for side in ("pre", "post"):
                for roi, n in rec[side]:
                    counts = per_neuron[int(rec["body"])].setdefault(str(roi),
                                                                     {"pre": 0, "post": 0})
                    counts[side] += int(n)
                    totals[str(roi)][side] += int(n)
        if len(records) < batch:
            break
        after = int(records[-1]["body"])
    keys, _, _ = driver.execute_query(
        f"MATCH (n:{NEURON} {{dataset: $key}}) UNWIND keys(n) AS k "
        "RETURN k, collect(DISTINCT valueType(n[k]))[0] AS t",
        key=key, database_=database, routing_=neo4j.RoutingControl.READ)
    properties = {r["k"]: r["t"] for r in keys if r["k"] not in totals}
    reserved = set(properties) | {"dataset", "bodyId", "roiInfo"}
    rows = [{"bodyId": body, "roiInfo": json.dumps(info, sort_keys=True),
             "flags": {roi: True for roi in info if roi not in reserved}}
            for body, info in per_neuron.items()]
    with driver.session(database=database) as session:
        for start in range(0, len(rows), batch):
            session.execute_write(lambda tx, part: tx.run(_SET_NEURON_ROIS, rows=part,
                                                          key=key).consume(),
                                  rows[start:start + batch])
        for statement in _DEFAULTS:
            session.run(statement, key=key).consume()
        session.run(_synapse_flags(key), key=key,
                    reserved=sorted(SYNAPSE_PROPERTIES)).consume()
    rois = sorted(totals)
    return {
        "roiInfo": json.dumps(dict(totals), sort_keys=True),
        "primaryRois": rois, "superLevelRois": rois,
        "roiHierarchy": json.dumps({"name": "all", "children": [{"name": r} for r in rois]}),
        "neuronProperties": json.dumps(
            {k: t.removesuffix(" NOT NULL") for k, t in properties.items()}, sort_keys=True),
        "totalPreCount": sum(t["pre"] for t in totals.values()),
        "totalPostCount": sum(t["post"] for t in totals.values()),
        "uuid": uuid.uuid4().hex,
        SCOPED: True,
        SIDES: True,
    }


def prepare_version(driver: neo4j.Driver, key: str, database: str = "neo4j", *,
                    imported: bool = False) -> dict[str, Any]:
    """Scope labels and neuPrint properties for version `key`, before it is published; the
    Meta fields to publish with it. `imported`: the offline importer already wrote the scope
    labels and the synapses' postsynaptic side (`ingest.bulk_import`), all but Meta's label."""
    add_scope_labels(driver, key, database, (META,) if imported else SCOPED_LABELS)
    add_scoped_indexes(driver, key, database)
    fields = neuprint_properties(driver, key, database)
    if not imported:
        add_synapse_sides(driver, key, database)
    return fields


def unscoped_versions(driver: neo4j.Driver, database: str = "neo4j") -> list[str]:
    """Keys of complete versions loaded before scope labels or synapse sides existed."""
    records, _, _ = driver.execute_query(
        f"MATCH (m:{META}) WHERE m.status = 'complete' AND NOT (coalesce(m.{SCOPED}, false) "
        f"AND coalesce(m.{SIDES}, false)) RETURN m.dataset AS key", database_=database)
    return [r["key"] for r in records]


def upgrade_versions(driver: neo4j.Driver, database: str = "neo4j") -> list[str]:
    """Label and complete every version loaded before scope labels existed; their keys."""
    done = []
    for key in unscoped_versions(driver, database):
        fields = prepare_version(driver, key, database)
        driver.execute_query(f"MATCH (m:{META} {{dataset: $key}}) SET m += $fields",
                             key=key, fields=fields, database_=database)
        done.append(key)
    return done
