"""`synapses`: the synapses of a neuron, or of one connection, row by row, paged by synapseId."""

from __future__ import annotations

from enum import Enum

import strawberry
from strawberry.types import Info

from connectome_query.graphql_api.access import require_dataset
from connectome_query.graphql_api.circuit_types import Synapse, synapse_from_row
from connectome_query.graphql_api.context import ApiContext
from connectome_query.graphql_api.pagination import PageInfo, check_page, decode_cursor, keyset_page
from connectome_query.graphql_api.types import BodyId
from connectome_query.schema.model import SYNAPSE

_FIELDS = """s.synapseId AS synapseId, s.location.x AS x, s.location.y AS y,
       s.location.z AS z, s.postCompartment AS compartment, s.confidence AS confidence,
       s.size AS size, s.roi AS roi, s.preBodyId AS pre, s.postBodyId AS post"""


def _page(mine: str, theirs: str) -> str:
    return f"""
MATCH (s:{SYNAPSE} {{dataset: $dataset, {mine}: $bodyId}})
WHERE ($partner IS NULL OR s.{theirs} = $partner) AND s.synapseId > $after
RETURN {_FIELDS}
ORDER BY s.synapseId LIMIT $limit
"""


OUTPUT_PAGE = _page("preBodyId", "postBodyId")
INPUT_PAGE = _page("postBodyId", "preBodyId")


@strawberry.enum(description="Which of a neuron's synapses: those it makes or those it receives.")
class SynapseSide(Enum):
    OUTPUT = "output"
    INPUT = "input"


@strawberry.type(description="A synapse and the two neurons it joins.")
class SynapseRow:
    synapse: Synapse
    pre: BodyId
    post: BodyId


@strawberry.type(description="A page of synapses ordered by synapseId (keyset pagination).")
class SynapsePage:
    synapses: list[SynapseRow]
    page_info: PageInfo


@strawberry.type
class SynapseQuery:
    @strawberry.field(description="Synapses of a neuron (OUTPUT: it is presynaptic; INPUT: "
                      "postsynaptic), or of one connection with `partner`; every one, page by "
                      "page (`after:` the page's endCursor).")
    async def synapses(
        self,
        info: Info[ApiContext, None],
        dataset: str,
        body_id: BodyId,
        side: SynapseSide = SynapseSide.OUTPUT,
        partner: BodyId | None = None,
        first: int = 100,
        after: str | None = None,
        version: int | None = None,
    ) -> SynapsePage:
        key = await require_dataset(info, dataset, version)
        check_page(first)
        start = decode_cursor(after or None, "synapseId", 1)
        params = {"dataset": key, "bodyId": int(body_id),
                  "partner": None if partner is None else int(partner),
                  "after": start[0] if start else -(2**63), "limit": first + 1}
        rows = await info.context.read(OUTPUT_PAGE if side is SynapseSide.OUTPUT else INPUT_PAGE,
                                       params)
        items, page = keyset_page(
            rows, first, "synapseId",
            lambda r: SynapseRow(synapse=synapse_from_row(r), pre=r["pre"], post=r["post"]),
            lambda s: [int(s.synapse.synapse_id)])
        return SynapsePage(synapses=items, page_info=page)
