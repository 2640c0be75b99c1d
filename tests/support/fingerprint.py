"""Fingerprints of what the database holds, to prove a load changed nothing or matches a copy."""

from __future__ import annotations

import hashlib
from typing import Any

import neo4j
import networkx as nx

from connectome_query.graphdb import catalog, summary


def graph_fingerprint(driver: neo4j.Driver) -> tuple:
    """Counts and a checksum over every neuron, edge and weight in the database."""
    records, _, _ = driver.execute_query("""
        MATCH (n) WITH count(n) AS nodes
        OPTIONAL MATCH (a)-[r]->(b)
        RETURN nodes, count(r) AS rels,
               sum(coalesce(r.weight, 0) * (1 + coalesce(a.bodyId, 0) % 9973)) AS checksum""")
    r = records[0]
    return r["nodes"], r["rels"], r["checksum"]


def expected_fingerprint(g: nx.DiGraph) -> dict[str, Any]:
    """What `fingerprint` must return for a clean load of `g` (computed without Neo4j)."""
    chem = sorted((a, b, d["weight"]) for a, b, d in g.edges(data=True))
    gap = sorted((a, b, w) for (a, b), w in g.graph["gap"].items())
    return {"neurons": g.number_of_nodes(), "ConnectsTo": len(chem), "GapJunction": len(gap),
            "checksum": _digest(chem, gap)}


def _digest(chem: list[tuple[int, int, int]], gap: list[tuple[int, int, int]]) -> str:
    h = hashlib.sha256()
    for kind, rows in (("c", chem), ("g", gap)):
        for a, b, w in rows:
            h.update(f"{kind}:{a}:{b}:{w};".encode())
    return h.hexdigest()


def fingerprint(driver: Any, dataset: str) -> dict[str, Any]:
    """Counts and a sha256 over every edge and weight of `dataset`'s current version.

    Also counts every node and relationship of that version (duplicates would show there), the
    versions still `loading` (a load that died and was not swept), the current version's key and
    its Meta status.
    """
    def q(cypher: str, **params: Any) -> list[dict[str, Any]]:
        records, _, _ = driver.execute_query(cypher, params)
        return [r.data() for r in records]

    try:
        key: str | None = catalog.resolve(driver, dataset).key
    except catalog.UnknownDataset:
        key = None
    chem = [(r["a"], r["b"], r["w"]) for r in q(
        "MATCH (a:Neuron {dataset: $d})-[r:ConnectsTo]->(b:Neuron) "
        "RETURN a.bodyId AS a, b.bodyId AS b, r.weight AS w ORDER BY a, b", d=key)]
    gap = [(r["a"], r["b"], r["w"]) for r in q(
        "MATCH (a:Neuron {dataset: $d})-[r:GapJunction]->(b:Neuron) "
        "RETURN a.bodyId AS a, b.bodyId AS b, r.weight AS w ORDER BY a, b", d=key)]
    neurons = q("MATCH (n:Neuron {dataset: $d}) RETURN count(n) AS n, "
                "count(DISTINCT n.bodyId) AS distinct", d=key)[0]
    nodes = q(f"MATCH (n) WHERE n.dataset = $d AND NOT n:Meta AND NOT n:{summary.LABEL} "
              "RETURN count(n) AS n", d=key)[0]["n"]
    summaries = q(f"MATCH (s:{summary.LABEL} {{dataset: $d}}) RETURN count(s) AS n",
                  d=key)[0]["n"]
    rels = q("MATCH ()-[r]->() WHERE r.dataset = $d RETURN count(r) AS n", d=key)[0]["n"]
    meta = q("MATCH (m:Meta {dataset: $d}) RETURN m.status AS s", d=key)
    loading = q("MATCH (m:Meta {name: $name, status: 'loading'}) RETURN count(m) AS n",
                name=dataset)[0]["n"]
    return {
        "neurons": neurons["n"], "distinctNeurons": neurons["distinct"],
        "ConnectsTo": len(chem), "GapJunction": len(gap),
        "distinctPairs": len(set(chem)) + len(set(gap)),
        "checksum": _digest(chem, gap), "nodes": nodes, "summaries": summaries, "rels": rels,
        "key": key,
        "metaStatus": meta[0]["s"] if meta else None, "loadingVersions": loading,
    }


def matches_clean(found: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """Differences between a database fingerprint and the expected clean load (empty = same)."""
    problems = [f"{k}: {found[k]} != {v}" for k, v in expected.items() if found[k] != v]
    if found["distinctNeurons"] != found["neurons"]:
        problems.append(f"duplicate neurons: {found['neurons']} vs {found['distinctNeurons']}")
    if found["distinctPairs"] != found["ConnectsTo"] + found["GapJunction"]:
        problems.append("duplicate relationships")
    if found["nodes"] != expected["neurons"]:
        problems.append(f"{found['nodes']} nodes carry the dataset, expected {expected['neurons']}")
    if found["summaries"] > 1:
        problems.append(f"{found['summaries']} summaries kept for one version")
    if found["rels"] != expected["ConnectsTo"] + expected["GapJunction"]:
        problems.append(f"{found['rels']} relationships carry the dataset")
    if found["metaStatus"] != "complete":
        problems.append(f"Meta status {found['metaStatus']!r}")
    if found["loadingVersions"]:
        problems.append(f"{found['loadingVersions']} unfinished versions left behind")
    return problems
