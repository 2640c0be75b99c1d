"""The API's core GraphQL types: datasets, neurons and their partners, and the shared scalars.

`BodyId` travels as a string (JavaScript numbers lose digits past 2^53). `Compartment` is built
from the schema contract's vocabulary, so the API names compartments as the graph stores them.
Circuit-query types, which build on these, are in `circuit_types`.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import TYPE_CHECKING, Any, NewType

import strawberry
from strawberry.types import Info

from connectome_query.graphql_api.context import ApiContext
from connectome_query.graphql_api.errors import QueryError
from connectome_query.graphql_api.loaders import PartnerKey
from connectome_query.graphql_api.pagination import (
    PageInfo,
    at_least,
    check_page,
    decode_cursor,
    encode_cursor,
)
from connectome_query.graphql_api.skeletons import SKELETON, to_swc
from connectome_query.schema import vocabulary
from connectome_query.schema.model import MONOAMINE, NEUROPEPTIDE, name_of


def _parse_body_id(value: Any) -> int:
    try:
        number = int(str(value), 10)
    except (TypeError, ValueError):
        raise QueryError(f"not a body id: {value!r} (expected digits)") from None
    if not 0 <= number < 2**63:
        raise QueryError(f"body id {value!r} is out of range")
    return number


BodyId = NewType("BodyId", int)
BODY_ID_SCALAR = strawberry.scalar(
    name="BodyId",
    serialize=str,
    parse_value=_parse_body_id,
    description="A 64-bit segment id. Sent as a string (JavaScript numbers lose digits past 2^53); "
    "accepted as a string or an integer.",
)

# The values are the labels the graph stores (`soma`, `ais`, ...).
if TYPE_CHECKING:
    Compartment = Enum
else:
    Compartment = strawberry.enum(
        Enum("Compartment", [(c.name, c.label) for c in vocabulary.Compartment]),
        description="Postsynaptic compartment of a synapse.")


@strawberry.enum(description="Which edges join a neuron to its partners: chemical synapses "
                 "(ConnectsTo, weight = synapses) or neuromodulator signalling (Monoamine, "
                 "Neuropeptide: weight = transmitter-receptor pathways).")
class PartnerKind(Enum):
    CHEMICAL = "chemical"
    MONOAMINE = MONOAMINE
    NEUROPEPTIDE = NEUROPEPTIDE


@strawberry.type(description="Electron-microscopy dataset, one per `Meta` node.")
class Dataset:
    name: str
    description: str | None
    species: str | None
    source: str | None
    status: str | None
    neuron_count: int
    chemical_connections: int = strawberry.field(
        description="Directed neuron pairs joined by at least one chemical synapse.")
    chemical_synapses: int = strawberry.field(description="Sum of ConnectsTo weights.")
    electrical_connections: int = strawberry.field(
        description="Unordered neuron pairs joined by gap junctions.")
    gap_junctions: int = strawberry.field(description="Sum of GapJunction weights.")
    synapse_count: int = strawberry.field(description="Synapse nodes with locations.")
    last_database_edit: str | None
    rois: list[RoiCount] = strawberry.field(
        description="Regions of interest named by the synapses, with their pre (synapse) and "
        "post counts (neuPrint's `roiInfo` of the dataset), by name.")


@strawberry.type(description="A region of interest and its synapse counts.")
class RoiCount:
    name: str
    pre: int
    post: int


@strawberry.type(description="One skeleton node (SWC row).")
class SkeletonNode:
    row_id: int
    type: int
    x: float
    y: float
    z: float
    radius: float
    link: int = strawberry.field(description="The parent's rowId; -1 at the root.")


@strawberry.type(description="A neuron's skeleton: its nodes in SWC order, and as SWC text.")
class Skeleton:
    nodes: list[SkeletonNode]
    swc: str


@strawberry.type(description="A point in the dataset's coordinates (nm where known).")
class Point:
    x: float
    y: float
    z: float


@strawberry.type(description="A reconstructed cell (neuPrint's Neuron).")
class Neuron:
    body_id: BodyId
    dataset: str
    key: strawberry.Private[str]
    """The dataset version the neuron was read from (see `graphdb.catalog`)."""
    instance: str | None = strawberry.field(description="Cell name, e.g. AVAL.")
    type: str | None = strawberry.field(description="Cell type, e.g. AVA.")
    cell_class: str | None
    neurotransmitter: str | None
    status: str | None
    pre: int = strawberry.field(description="Outgoing chemical synapses.")
    post: int = strawberry.field(description="Incoming chemical synapses.")
    upstream_partners: int = strawberry.field(description="Neurons sending chemical synapses.")
    downstream_partners: int = strawberry.field(description="Neurons receiving them.")
    gap_junctions: int = strawberry.field(description="Electrical synapses (both directions).")
    size: float | None
    soma_location: Point | None

    @strawberry.field(description="Presynaptic partners, strongest first (then by bodyId); "
                      "`after:` the last one's cursor for the next page; `kind:` synapses "
                      "(default) or a neuromodulator network.")
    async def upstream(self, info: Info[ApiContext, None], min_weight: int = 1,
                       first: int = 100, after: str | None = None,
                       kind: PartnerKind = PartnerKind.CHEMICAL) -> list[Connection]:
        return await _partners(info, "upstream", self, min_weight, first, after, kind)

    @strawberry.field(description="Postsynaptic partners, strongest first (then by bodyId); "
                      "`after:` the last one's cursor for the next page; `kind:` synapses "
                      "(default) or a neuromodulator network.")
    async def downstream(self, info: Info[ApiContext, None], min_weight: int = 1,
                         first: int = 100, after: str | None = None,
                         kind: PartnerKind = PartnerKind.CHEMICAL) -> list[Connection]:
        return await _partners(info, "downstream", self, min_weight, first, after, kind)

    @strawberry.field(description="The neuron's skeleton, if one was loaded (null otherwise).")
    async def skeleton(self, info: Info[ApiContext, None]) -> Skeleton | None:
        rows = await info.context.read(SKELETON, {"key": self.key, "bodyId": int(self.body_id)})
        if not rows:
            return None
        return Skeleton(nodes=[SkeletonNode(row_id=r["rowId"], type=r["type"], x=r["x"],
                                            y=r["y"], z=r["z"], radius=r["radius"],
                                            link=r["link"]) for r in rows], swc=to_swc(rows))

    @strawberry.field(description="Gap-junction partners (undirected), strongest first; "
                      "`after:` the last one's cursor for the next page.")
    async def electrical_partners(self, info: Info[ApiContext, None], min_weight: int = 1,
                                  first: int = 100, after: str | None = None,
                                  ) -> list[Connection]:
        return await _partners(info, "electrical", self, min_weight, first, after)


@strawberry.type(description="A partner and the weight between the two cells: synapses, or "
                 "transmitter-receptor pathways for a neuromodulator partner.")
class Connection:
    weight: int
    partner: Neuron

    @strawberry.field(description="Pass as `after:` to list the partners after this one.")
    def cursor(self) -> str:
        return encode_cursor(PARTNER_CURSOR, self.weight, int(self.partner.body_id))


@strawberry.type
class NeuronEdge:
    cursor: str
    node: Neuron


@strawberry.type(description="A page of neurons ordered by bodyId (keyset pagination).")
class NeuronConnection:
    edges: list[NeuronEdge]
    page_info: PageInfo
    total_count: int


PARTNER_CURSOR = "partner"


async def _partners(info: Info[ApiContext, None], direction: str, neuron: Neuron,
                    min_weight: int, first: int, after: str | None,
                    kind: PartnerKind = PartnerKind.CHEMICAL) -> list[Connection]:
    check_page(first)
    at_least(min_weight, "minWeight", 0)
    weight, body = decode_cursor(after, PARTNER_CURSOR, 2) or (None, None)
    key = PartnerKey(direction, neuron.key, int(neuron.body_id), min_weight, first, weight,
                     body, None if kind is PartnerKind.CHEMICAL else kind.value)
    rows = await info.context.loaders.partners.load(key)
    return [Connection(weight=r["weight"], partner=neuron_from_row(r["partner"])) for r in rows]


def neuron_from_row(row: dict[str, Any]) -> Neuron:
    """A Neuron from the map projection of `cypher.neuron_fields`."""
    soma = row.get("soma")
    return Neuron(
        body_id=row["bodyId"], dataset=name_of(row["dataset"]), key=row["dataset"],
        instance=row.get("instance"),
        type=row.get("type"), cell_class=row.get("cellClass"),
        neurotransmitter=row.get("neurotransmitter"), status=row.get("status"),
        pre=row.get("pre") or 0, post=row.get("post") or 0,
        upstream_partners=row.get("upstreamPartners") or 0,
        downstream_partners=row.get("downstreamPartners") or 0,
        gap_junctions=row.get("gapJunctions") or 0, size=row.get("size"),
        soma_location=Point(x=soma[0], y=soma[1], z=soma[2]) if soma else None,
    )


def dataset_from_meta(meta: dict[str, Any]) -> Dataset:
    """A Dataset from its Meta node's properties."""
    return Dataset(
        name=meta["name"], description=meta.get("description"),
        species=meta.get("species"),
        source=meta.get("source"), status=meta.get("status"),
        neuron_count=meta.get("neuronCount") or 0,
        chemical_connections=meta.get("chemicalConnections") or 0,
        chemical_synapses=meta.get("chemicalSynapses") or 0,
        electrical_connections=meta.get("electricalConnections") or 0,
        gap_junctions=meta.get("gapJunctions") or 0,
        synapse_count=meta.get("synapseCount") or 0,
        last_database_edit=meta.get("lastDatabaseEdit"),
        rois=[RoiCount(name=name, pre=int(c.get("pre", 0)), post=int(c.get("post", 0)))
              for name, c in sorted(json.loads(meta.get("roiInfo") or "{}").items())],
    )
