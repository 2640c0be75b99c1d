"""The Cypher of matrix export: the dataset's counts, the neuron index, edge pages, metadata.

Values are parameters; the only text built in Python is the relationship pattern, the weight
expression and the selection filter, each chosen from fixed pieces by the normalized request.
Results come back as a few long lists rather than one record per row: the Python driver spends
tens of microseconds per record, so 139k records cost seconds where 2 lists cost a fraction of
one.
"""

from __future__ import annotations

from typing import Any

from connectome_query.export.request import MatrixRequest

NEURON_METADATA = ("bodyId", "instance", "type", "cellClass", "neurotransmitter", "status",
                   "pre", "post", "upstream", "downstream", "gapJunctions", "size",
                   "somaX", "somaY", "somaZ")
"""Columns of the neuron metadata table, in order (the METADATA query's list)."""

META = """
MATCH (m:Meta {dataset: $dataset})
RETURN m.neuronCount AS neurons, m.chemicalConnections AS chemical,
       m.electricalConnections AS electrical, m.monoamineConnections AS monoamine,
       m.neuropeptideConnections AS neuropeptide
"""

# `collect` drops nulls, hence the sentinel for a missing type.
NULL_TYPE = "\u001f(null)"

INDEX = """
MATCH (n:Neuron {dataset: $dataset})
WHERE ($ids IS NULL OR n.bodyId IN $ids) AND ($types IS NULL OR n.type IN $types)
RETURN collect(n.bodyId) AS bodyId, collect(coalesce(n.type, $nullType)) AS type
"""

METADATA = """
UNWIND $ids AS id
MATCH (n:Neuron {dataset: $dataset, bodyId: id})
RETURN collect([n.bodyId, n.instance, n.type, n.cellClass, n.neurotransmitter, n.status,
                n.pre, n.post, n.upstream, n.downstream, n.gapJunctions, n.size,
                n.somaLocation.x, n.somaLocation.y, n.somaLocation.z]) AS rows
"""


def _weight_expr(req: MatrixRequest) -> str:
    if req.rois is None:
        return "c.weight"
    # The synapses of a connection that lie in the requested ROIs (neuPrint's roiInfo post).
    return ("reduce(s = 0, i IN range(0, coalesce(size(c.rois), 0) - 1) | "
            "s + CASE WHEN c.rois[i] IN $rois THEN coalesce(c.roiWeights[i], 0) ELSE 0 END)")


def _pattern(req: MatrixRequest) -> str:
    # Gap junctions are stored once per unordered pair; matched undirected they come back
    # once from each end, which is the symmetric matrix.
    if req.synapse_type == "electrical":
        return "-[c:GapJunction]-"
    if req.synapse_type == "monoamine":
        return "-[c:Monoamine]->"
    if req.synapse_type == "neuropeptide":
        return "-[c:Neuropeptide]->"
    return "-[c:ConnectsTo]->"


def _selection_filter(req: MatrixRequest, var: str) -> str:
    """The neuron selection (ids, types) on one end of an edge, `a` (pre) or `b` (post).

    ConnectsTo/GapJunction only join neurons of one dataset (the loader matches both ends by
    dataset), so `b` needs neither a label nor a dataset check.
    """
    parts = ["true"]
    if req.body_ids is not None:
        parts.append(f"{var}.bodyId IN $selected")
    if req.types is not None:
        parts.append(f"{var}.type IN $types")
    return " AND ".join(parts)


def page_query(req: MatrixRequest) -> str:
    """Edges leaving one page of neurons ($page: bodyIds), as three parallel lists."""
    return f"""
UNWIND $page AS id
MATCH (a:Neuron {{dataset: $dataset, bodyId: id}}){_pattern(req)}(b)
WHERE {_selection_filter(req, "b")}
WITH a, b, {_weight_expr(req)} AS w
WHERE w >= $minWeight
RETURN collect(a.bodyId) AS pre, collect(b.bodyId) AS post, collect(w) AS weight
"""


def count_query(req: MatrixRequest) -> str:
    """How many entries the matrix has, counting at most $limit."""
    return f"""
MATCH (a:Neuron {{dataset: $dataset}}){_pattern(req)}(b)
WHERE {_selection_filter(req, "a")} AND {_selection_filter(req, "b")}
WITH {_weight_expr(req)} AS w WHERE w >= $minWeight
WITH 1 AS x LIMIT $limit
RETURN count(x) AS n
"""


def edges_query(req: MatrixRequest) -> str:
    """All entries in one result (for small matrices answered inline)."""
    return f"""
MATCH (a:Neuron {{dataset: $dataset}}){_pattern(req)}(b)
WHERE {_selection_filter(req, "a")} AND {_selection_filter(req, "b")}
WITH a, b, {_weight_expr(req)} AS w WHERE w >= $minWeight
WITH a, b, w LIMIT $limit
RETURN collect(a.bodyId) AS pre, collect(b.bodyId) AS post, collect(w) AS weight
"""


def query_params(req: MatrixRequest) -> dict[str, Any]:
    if req.key is None:
        raise ValueError("the request's dataset version is not resolved yet")
    return {
        "dataset": req.key,
        "ids": list(req.body_ids) if req.body_ids is not None else None,
        "selected": list(req.body_ids) if req.body_ids is not None else None,
        "types": list(req.types) if req.types is not None else None,
        "rois": list(req.rois) if req.rois is not None else None,
        "minWeight": req.min_weight,
        "nullType": NULL_TYPE,
    }
