"""A neuron's skeleton as SWC text or JSON rows (GraphQL `Neuron.skeleton` and neuPrint's
`/api/skeletons/skeleton/...`)."""

from __future__ import annotations

from typing import Any

from connectome_query.graphql_api.errors import QueryError
from connectome_query.schema.model import HAS_SKELETON, NEURON
from connectome_query.schema.model import SKELETON as SKELETON_LABEL

SKELETON = f"""
MATCH (:{NEURON} {{dataset: $key, bodyId: $bodyId}})-[:{HAS_SKELETON}]->(k:{SKELETON_LABEL})
UNWIND range(0, size(k.nodeIds) - 1) AS i
RETURN k.nodeIds[i] AS rowId, k.kinds[i] AS type, k.x[i] AS x, k.y[i] AS y, k.z[i] AS z,
       k.radius[i] AS radius, k.parents[i] AS link
ORDER BY i
"""
"""One row per skeleton node, in stored (SWC) order."""


class NoSkeleton(QueryError):
    """The neuron has no skeleton in this version."""

    code = "no_skeleton"


def to_swc(nodes: list[dict[str, Any]]) -> str:
    """SWC text: `id type x y z radius parent`, one node a line."""
    lines = ["# skeleton from connectome-query", "# id type x y z radius parent"]
    lines += [f"{n['rowId']} {n['type']} {n['x']:g} {n['y']:g} {n['z']:g} {n['radius']:g} "
              f"{n['link']}" for n in nodes]
    return "\n".join(lines) + "\n"
