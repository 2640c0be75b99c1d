"""Synthetic neuPrint-style datasets and a graph fingerprint, shared by reliability/security tests
and the bench scripts.

The expected graph is kept as a networkx DiGraph built from the same random draw, so checks
compare the database with an independent in-memory copy.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np


def write_neuprint(folder: Path, *, neurons: int = 200, edges: int = 1500, gap: int = 200,
                   seed: int = 0) -> nx.DiGraph:
    """Write neurons.csv + connections.csv; return the chemical graph (weights on edges).

    Gap junctions are listed once per unordered pair; they are on the graph as edges with
    `kind='electrical'` in `graph.graph['gap']` (a dict {(lo, hi): weight}).
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ids = np.sort(rng.choice(np.arange(10_000, 10_000_000), size=neurons, replace=False))
    types = [f"T{int(t)}" for t in rng.integers(0, 12, size=neurons)]
    lines = ["bodyId,type,instance,somaX,somaY,somaZ"]
    for i, (b, t) in enumerate(zip(ids, types, strict=True)):
        x, y, z = rng.uniform(0, 1e5, size=3)
        lines.append(f"{b},{t},{t}_{i},{x:.1f},{y:.1f},{z:.1f}")
    (folder / "neurons.csv").write_text("\n".join(lines) + "\n")
    g = nx.DiGraph()
    g.add_nodes_from(int(b) for b in ids)
    pairs: set[tuple[int, int]] = set()
    while len(pairs) < edges:
        a, b = rng.choice(ids, size=2, replace=False)
        pairs.add((int(a), int(b)))
    gaps: dict[tuple[int, int], int] = {}
    while len(gaps) < gap:
        a, b = sorted(int(v) for v in rng.choice(ids, size=2, replace=False))
        gaps[(a, b)] = int(rng.integers(1, 20))
    rows = ["bodyId_pre,bodyId_post,weight,kind"]
    for a, b in sorted(pairs):
        w = int(rng.integers(1, 60))
        g.add_edge(a, b, weight=w)
        rows.append(f"{a},{b},{w},chemical")
    for (a, b), w in sorted(gaps.items()):
        rows.append(f"{a},{b},{w},electrical")
    (folder / "connections.csv").write_text("\n".join(rows) + "\n")
    g.graph["gap"] = gaps
    return g


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
    """Counts and a sha256 over every edge and weight of `dataset` in the database.

    Also counts every node and relationship carrying the dataset (duplicates would show there),
    and returns the Meta status.
    """
    def q(cypher: str) -> list[dict[str, Any]]:
        records, _, _ = driver.execute_query(cypher, d=dataset)
        return [r.data() for r in records]

    chem = [(r["a"], r["b"], r["w"]) for r in q(
        "MATCH (a:Neuron {dataset: $d})-[r:ConnectsTo]->(b:Neuron) "
        "RETURN a.bodyId AS a, b.bodyId AS b, r.weight AS w ORDER BY a, b")]
    gap = [(r["a"], r["b"], r["w"]) for r in q(
        "MATCH (a:Neuron {dataset: $d})-[r:GapJunction]->(b:Neuron) "
        "RETURN a.bodyId AS a, b.bodyId AS b, r.weight AS w ORDER BY a, b")]
    neurons = q("MATCH (n:Neuron {dataset: $d}) RETURN count(n) AS n, "
                "count(DISTINCT n.bodyId) AS distinct")[0]
    nodes = q("MATCH (n) WHERE n.dataset = $d AND NOT n:Meta RETURN count(n) AS n")[0]["n"]
    rels = q("MATCH ()-[r]->() WHERE r.dataset = $d RETURN count(r) AS n")[0]["n"]
    meta = q("MATCH (m:Meta {dataset: $d}) RETURN m.status AS s, count(*) AS n")
    return {
        "neurons": neurons["n"], "distinctNeurons": neurons["distinct"],
        "ConnectsTo": len(chem), "GapJunction": len(gap),
        "distinctPairs": len(set(chem)) + len(set(gap)),
        "checksum": _digest(chem, gap), "nodes": nodes, "rels": rels,
        "metaStatus": meta[0]["s"] if meta else None, "metaNodes": meta[0]["n"] if meta else 0,
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
    if found["rels"] != expected["ConnectsTo"] + expected["GapJunction"]:
        problems.append(f"{found['rels']} relationships carry the dataset")
    if found["metaStatus"] != "complete" or found["metaNodes"] != 1:
        problems.append(f"Meta status {found['metaStatus']!r} x{found['metaNodes']}")
    return problems
