"""The motif language: a list of edges between named nodes, with constraints.

A motif is edges `source -> target` (names the client picks, e.g. "a", "b") each with
`minWeight` (default 1), an optional `maxWeight`, and `absent: true` meaning "no such edge of at
least minWeight" (for induced motifs); plus optional node constraints (type, cellClass, bodyId,
chandelier). Matches are injective (distinct neurons per name), i.e. subgraph monomorphisms:
other edges may exist unless ruled out with `absent`. Names are never put in Cypher: node i is
`n{i}` (in order of first appearance), edge j is `e{j}`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from connectome_query.graphql_api.circuit_cypher import (
    MAX_MOTIF_EDGES,
    MAX_MOTIF_NODES,
    motif_query,
)
from connectome_query.graphql_api.errors import QueryError

NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,15}$")


@dataclass(frozen=True)
class EdgeSpec:
    source: str
    target: str
    min_weight: int = 1
    max_weight: int | None = None
    absent: bool = False


@dataclass(frozen=True)
class NodeSpec:
    name: str
    type: str | None = None
    cell_class: str | None = None
    body_id: int | None = None
    chandelier: bool | None = None


@dataclass(frozen=True)
class CompiledMotif:
    names: list[str]
    cypher: str
    params: dict[str, Any]
    present: list[tuple[int, int, int]]


def _node_names(edges: list[EdgeSpec]) -> list[str]:
    """The node names in order of first appearance, once every edge is checked."""
    if not edges:
        raise QueryError("a motif needs at least one edge")
    if len(edges) > MAX_MOTIF_EDGES:
        raise QueryError(f"a motif may have at most {MAX_MOTIF_EDGES} edges, got {len(edges)}")
    names: list[str] = []
    seen_pairs: set[tuple[str, str]] = set()
    for j, e in enumerate(edges):
        for name in (e.source, e.target):
            if not NAME.match(name):
                raise QueryError(f"edge {j}: invalid node name {name!r} (a letter, then up to 15 "
                                 "letters, digits or '_')")
            if name not in names:
                names.append(name)
        if e.source == e.target:
            raise QueryError(f"edge {j}: {e.source} -> {e.target} is a self-loop")
        if (e.source, e.target) in seen_pairs:
            raise QueryError(f"edge {j}: {e.source} -> {e.target} is listed twice")
        seen_pairs.add((e.source, e.target))
        if e.min_weight < 1:
            raise QueryError(f"edge {j}: minWeight must be >= 1, got {e.min_weight}")
        if e.max_weight is not None and e.max_weight < e.min_weight:
            raise QueryError(f"edge {j}: maxWeight {e.max_weight} < minWeight {e.min_weight}")
    if len(names) > MAX_MOTIF_NODES:
        raise QueryError(f"a motif may have at most {MAX_MOTIF_NODES} nodes, got {len(names)}")
    return names


def compile_motif(edges: list[EdgeSpec], nodes: list[NodeSpec]) -> CompiledMotif:
    """Check a motif and build its query; raise QueryError saying what is wrong."""
    names = _node_names(edges)
    index = {name: i for i, name in enumerate(names)}
    present = [(j, index[e.source], index[e.target]) for j, e in enumerate(edges) if not e.absent]
    absent = [(j, index[e.source], index[e.target]) for j, e in enumerate(edges) if e.absent]
    if not present:
        raise QueryError("a motif needs at least one edge that is not `absent`")
    anchored = {s for _, s, _ in present} | {t for _, _, t in present}
    loose = [names[i] for i in range(len(names)) if i not in anchored]
    if loose:
        raise QueryError(f"node(s) {loose} appear only in absent edges; give each node at least "
                         "one present edge")
    node_params: list[dict[str, Any]] = [
        {"type": None, "cellClass": None, "bodyId": None, "chandelier": None} for _ in names]
    for spec in nodes:
        if spec.name not in index:
            raise QueryError(f"node constraint for {spec.name!r}, which no edge mentions")
        node_params[index[spec.name]] = {"type": spec.type, "cellClass": spec.cell_class,
                                         "bodyId": spec.body_id, "chandelier": spec.chandelier}
    edge_params = [{"minWeight": e.min_weight, "maxWeight": e.max_weight} for e in edges]
    return CompiledMotif(
        names=names,
        cypher=motif_query(len(names), present, absent),
        params={"nodes": node_params, "edges": edge_params},
        present=present,
    )


FEED_FORWARD_LOOP = [EdgeSpec("a", "b"), EdgeSpec("b", "c"), EdgeSpec("a", "c")]
"""a -> b -> c with the shortcut a -> c."""
