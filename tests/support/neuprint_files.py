"""Synthetic neuPrint-style folders (neurons.csv + connections.csv) with their expected graph.

The expected graph is a networkx DiGraph built from the same random draw, so checks compare the
database with an independent in-memory copy.
"""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd


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


def random_neuprint(folder: Path, seed: int, n: int = 60, m: int = 400) -> nx.DiGraph:
    """neurons.csv (FlyWire-range ids, `somaLocation` lists) + connections.csv with heavy-tailed
    weights; returns the chemical graph."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ids = rng.choice(10**12, size=n, replace=False) + 10**15
    types = rng.choice(["KC", "PN", "MBON", "LN"], size=n)
    pd.DataFrame({"bodyId": ids, "type": types, "instance": [f"{t}_{i}" for i, t in
                                                              enumerate(types)],
                  "somaLocation": [f"[{x}, {y}, {z}]" for x, y, z in rng.integers(0, 1000, (n, 3))]}
                 ).to_csv(folder / "neurons.csv", index=False)
    pairs = {(int(a), int(b)) for a, b in rng.choice(ids, size=(m, 2)) if a != b}
    g = nx.DiGraph()
    g.add_nodes_from(int(i) for i in ids)
    rows = []
    for a, b in sorted(pairs):
        w = int(rng.pareto(1.5) * 3) + 1
        g.add_edge(a, b, weight=w)
        rows.append((a, b, w))
    pd.DataFrame(rows, columns=["bodyId_pre", "bodyId_post", "weight"]).to_csv(
        folder / "connections.csv", index=False)
    return g
