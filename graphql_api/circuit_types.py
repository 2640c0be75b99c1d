"""GraphQL types of the circuit queries: synapses, contacts, chandelier cells, paths, motifs,
cell-type connectivity and Neuroglancer links, with the functions that build them from rows.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import strawberry
from strawberry.types import Info

from connectome_query.graphql_api.context import ApiContext
from connectome_query.graphql_api.loaders import AisKey
from connectome_query.graphql_api.pagination import PageInfo, at_least, check_page
from connectome_query.graphql_api.types import BodyId, Connection, Neuron, Point, neuron_from_row


@strawberry.enum(description="Which side of a neuron: its inputs (upstream) or outputs.")
class Direction(Enum):
    UPSTREAM = "upstream"
    DOWNSTREAM = "downstream"


@strawberry.type(description="One chemical synapse; location in nm.")
class Synapse:
    synapse_id: BodyId
    location: Point
    compartment: str | None = strawberry.field(description="Postsynaptic compartment.")
    confidence: float | None
    size: float | None
    roi: str | None


def synapse_from_row(row: dict[str, Any]) -> Synapse:
    return Synapse(synapse_id=row["synapseId"],
                   location=Point(x=row["x"], y=row["y"], z=row["z"]),
                   compartment=row.get("compartment"), confidence=row.get("confidence"),
                   size=row.get("size"), roi=row.get("roi"))


@strawberry.type(description="A presynaptic → postsynaptic neuron pair and the synapses "
                 "counted between them.")
class Contact:
    pre: Neuron
    post: Neuron
    synapse_count: int = strawberry.field(
        description="Synapses counted (onto the asked compartment, if any).")
    synapses: list[Synapse] = strawberry.field(
        description="The counted synapses by synapseId, at most synapsesPerContact.")
    post_is_chandelier: bool | None = None


@strawberry.type(description="A page of contacts ordered by (pre bodyId, post bodyId).")
class ContactPage:
    contacts: list[Contact]
    page_info: PageInfo


def contact_from_row(row: dict[str, Any]) -> Contact:
    return Contact(pre=neuron_from_row(row["pre"]), post=neuron_from_row(row["post"]),
                   synapse_count=int(row["synapseCount"]),
                   synapses=[synapse_from_row(s) for s in row["synapses"]],
                   post_is_chandelier=row.get("postIsChandelier"))


@strawberry.type(description="A cell innervated on its axon initial segment.")
class AisTarget:
    neuron: Neuron
    synapse_count: int = strawberry.field(description="Synapses onto the AIS.")


@strawberry.type(description="A neuron classified as a chandelier (axo-axonic) cell at ingest.")
class ChandelierCell:
    neuron: Neuron
    ais_output_fraction: float | None = strawberry.field(
        description="Output synapses onto AIS / output synapses of known compartment.")
    ais_output_synapses: int

    @strawberry.field(description="Cells whose AIS it innervates, most synapses first "
                      "(batched: one query for all cells of the page).")
    async def targets(self, info: Info[ApiContext, None], min_synapses: int = 1,
                      first: int = 100) -> list[AisTarget]:
        check_page(first)
        at_least(min_synapses, "minSynapses", 1)
        key = AisKey(self.neuron.key, int(self.neuron.body_id), min_synapses, first)
        rows = await info.context.loaders.ais_targets.load(key)
        return [AisTarget(neuron=neuron_from_row(r["neuron"]), synapse_count=int(r["synapseCount"]))
                for r in rows]


@strawberry.type
class ChandelierPage:
    cells: list[ChandelierCell]
    page_info: PageInfo
    total_count: int


@strawberry.type(description="How many connections have a given number of synapses.")
class HistogramBin:
    synapses: int
    connections: int


@strawberry.type(description="Partners of one cell type.")
class PartnerTypeGroup:
    type: str | None = strawberry.field(description="Partner type (null: untyped partners).")
    neurons: int = strawberry.field(description="Partners of this type past the threshold.")
    synapses: int = strawberry.field(description="Their synapses with the neuron.")
    partners: list[Connection] = strawberry.field(
        description="Strongest first, at most partnersPerType.")


@strawberry.input(description="One neuron (bodyId or name) or every neuron of a type.")
class NeuronSelector:
    body_id: BodyId | None = None
    name: str | None = None
    type: str | None = None


@strawberry.type(description="A directed path; weights[i] joins neurons[i] to neurons[i+1].")
class Path:
    length: int
    neurons: list[Neuron]
    weights: list[int]


@strawberry.type
class PathResult:
    paths: list[Path]
    truncated: bool = strawberry.field(description="More paths exist than were returned.")


def path_from_row(row: dict[str, Any]) -> Path:
    return Path(length=len(row["weights"]), neurons=[neuron_from_row(n) for n in row["neurons"]],
                weights=[int(w) for w in row["weights"]])


@strawberry.type(description="Two neurons connected both ways.")
class ReciprocalPair:
    a: Neuron = strawberry.field(description="The one with the lower bodyId.")
    b: Neuron
    forward: int = strawberry.field(description="Synapses a → b.")
    backward: int = strawberry.field(description="Synapses b → a.")


@strawberry.type
class ReciprocalPage:
    pairs: list[ReciprocalPair]
    page_info: PageInfo


@strawberry.input(description="A motif edge source → target. `absent: true` means no such "
                  "edge with at least minWeight synapses.")
class MotifEdgeInput:
    source: str
    target: str
    min_weight: int = 1
    max_weight: int | None = None
    absent: bool = False


@strawberry.input(description="Constraints on one motif node.")
class MotifNodeInput:
    name: str
    type: str | None = None
    cell_class: str | None = None
    body_id: BodyId | None = None
    chandelier: bool | None = None


@strawberry.type
class MotifBinding:
    name: str
    neuron: Neuron


@strawberry.type
class MotifEdgeWeight:
    source: str
    target: str
    weight: int


@strawberry.type(description="One embedding of the motif.")
class MotifMatch:
    nodes: list[MotifBinding]
    edges: list[MotifEdgeWeight]


@strawberry.type(description="Motif matches ordered by their neurons' bodyIds (keyset pages).")
class MotifPage:
    matches: list[MotifMatch]
    page_info: PageInfo


@strawberry.type
class CellType:
    type: str
    neurons: int


@strawberry.type(description="Chemical connectivity from one cell type to another.")
class TypeConnection:
    pre_type: str
    post_type: str
    synapses: int
    connections: int = strawberry.field(description="Neuron pairs past minWeight.")
    pre_neurons: int = strawberry.field(description="Distinct presynaptic neurons involved.")
    post_neurons: int = strawberry.field(description="Distinct postsynaptic neurons involved.")
    pre_type_neurons: int = strawberry.field(description="Neurons of the pre type.")
    post_type_neurons: int = strawberry.field(description="Neurons of the post type.")


@strawberry.type(description="A Neuroglancer link and its state.")
class NeuroglancerLink:
    url: str
    state: str = strawberry.field(description="The viewer state as JSON.")
    segments: list[BodyId]
    synapse_count: int
