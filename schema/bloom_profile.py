"""A dataset's Bloom profile read from the graph, and its perspective written to a file."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import neo4j

from connectome_query.schema.bloom import WEIGHTED, DatasetProfile, build_perspective
from connectome_query.schema.model import (
    META,
    NEURON,
    SYNAPSE,
    SYNAPSE_SET,
    is_current,
)

_VALUE_TYPES = {"STRING": "string", "INTEGER": "bigint", "FLOAT": "number",
                "BOOLEAN": "boolean", "POINT": "point", "LIST": "array"}


def _bloom_type(value_type: str) -> str:
    """Neo4j's `valueType()` text (e.g. "INTEGER NOT NULL") as Bloom's data type name."""
    head = value_type.split("<", 1)[0].split(" ", 1)[0]
    return _VALUE_TYPES.get(head, "string")


def profile_dataset(driver: neo4j.Driver, dataset: str, database: str = "neo4j") -> DatasetProfile:
    """Read what the perspective needs from the database; ValueError if the dataset is absent."""

    def rows(cypher: str, key: str | None = None) -> list[neo4j.Record]:
        records, _, _ = driver.execute_query(cypher, d=key, database_=database,
                                             routing_=neo4j.RoutingControl.READ)
        return records

    current = rows(f"MATCH (m:{META}) WHERE coalesce(m.name, m.dataset) = $d "
                   f"AND {is_current('m')} RETURN m.dataset AS key", dataset)
    if not current:
        raise ValueError(f"no dataset {dataset!r} in the database (see `connectome datasets`)")
    key = current[0]["key"]

    def scoped(cypher: str) -> list[neo4j.Record]:
        return rows(cypher, key)

    classes = sorted(r["c"] for r in scoped(
        f"MATCH (n:{NEURON} {{dataset: $d}}) WHERE n.cellClass IS NOT NULL "
        "RETURN DISTINCT n.cellClass AS c"))
    span = scoped(f"MATCH (n:{NEURON} {{dataset: $d}}) "
                "WITH coalesce(n.pre, 0) + coalesce(n.post, 0) AS s "
                "RETURN min(s) AS lo, max(s) AS hi")[0]
    weights: dict[str, tuple[int, int]] = {}
    for rel in WEIGHTED:
        r = scoped(f"MATCH (:{NEURON} {{dataset: $d}})-[r:{rel}]->() "
                 "RETURN min(r.weight) AS lo, max(r.weight) AS hi")[0]
        if r["lo"] is not None:
            weights[rel] = (int(r["lo"]), int(r["hi"]))
    extra: dict[str, list[tuple[str, str]]] = {}
    for label in (META, NEURON, SYNAPSE_SET, SYNAPSE):
        found = scoped(f"MATCH (n:{label} {{dataset: $d}}) WITH n LIMIT 1000 "
                     "UNWIND keys(n) AS k RETURN DISTINCT k, valueType(n[k]) AS t")
        extra[label] = sorted({(r["k"], _bloom_type(r["t"])) for r in found})
    return DatasetProfile(
        dataset=dataset, cell_classes=classes,
        synapse_count_range=(int(span["lo"] or 0), int(span["hi"] or 0)),
        weight_ranges=weights, extra_properties=extra,
    )


def write_perspective(driver: neo4j.Driver, dataset: str, output: Path,
                      now_ms: int | None = None) -> dict[str, Any]:
    """Build the perspective for `dataset` from the database and write it as JSON."""
    stamp = int(time.time() * 1000) if now_ms is None else now_ms
    perspective = build_perspective(profile_dataset(driver, dataset), now_ms=stamp)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".partial")
    tmp.write_text(json.dumps(perspective, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(output)
    return perspective
