"""Circuit queries: chandelier→AIS, multi-synaptic contacts, partners by type, paths, motifs,
cell-type connectivity and Neuroglancer links (see `graphql_api/CIRCUITS.md`).

`CircuitQuery` is mixed into the schema's `Query`. This module never imports
`graphql_api.schema` at import time (that module imports this one): shared types are referenced
with `strawberry.lazy` and helpers are imported inside functions.
"""

from __future__ import annotations

import base64
import json
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.types import Info

from connectome_query.graphdb.settings import ApiSettings, from_env
from connectome_query.graphql_api import circuit_cypher as cq
from connectome_query.graphql_api.context import ApiContext
from connectome_query.graphql_api.db import read
from connectome_query.graphql_api.errors import QueryError
from connectome_query.graphql_api.motifs import FEED_FORWARD_LOOP, EdgeSpec, NodeSpec, compile_motif
from connectome_query.graphql_api.neuroglancer import state_url, viewer_state

if TYPE_CHECKING:
    from connectome_query.graphql_api.schema import BodyId, Connection, Neuron, PageInfo, Point

NeuronT = Annotated["Neuron", strawberry.lazy("connectome_query.graphql_api.schema")]
PointT = Annotated["Point", strawberry.lazy("connectome_query.graphql_api.schema")]
BodyIdT = Annotated["BodyId", strawberry.lazy("connectome_query.graphql_api.schema")]
PageInfoT = Annotated["PageInfo", strawberry.lazy("connectome_query.graphql_api.schema")]
ConnectionT = Annotated["Connection", strawberry.lazy("connectome_query.graphql_api.schema")]

MAX_PAGE = 1000
MAX_SYNAPSES_PER_CONTACT = 1000
MAX_ENDPOINT_PAIRS = 2500
"""Paths between types: at most this many (source, target) neuron pairs."""
MAX_NEUROGLANCER_SYNAPSES = 5000


def query_timeout() -> float:
    """Seconds a circuit query may run (CONNECTOME_QUERY_TIMEOUT_S, default 30)."""
    return from_env(ApiSettings).query_timeout_s


async def _read(info: Info[ApiContext, None], cypher: str,
                params: dict[str, Any]) -> list[dict[str, Any]]:
    ctx = info.context
    return await read(ctx.driver, cypher, params, database=ctx.database,
                      timeout=query_timeout())


async def _dataset(info: Info[ApiContext, None], name: str) -> str:
    from connectome_query.graphql_api.schema import require_dataset

    await require_dataset(info, name)
    return name


def _neuron(row: dict[str, Any]) -> Neuron:
    from connectome_query.graphql_api.schema import neuron_from_row

    return neuron_from_row(row)


def _page(first: int, name: str = "first", maximum: int = MAX_PAGE) -> int:
    if not 1 <= first <= maximum:
        raise QueryError(f"{name} must be between 1 and {maximum}, got {first}")
    return first


def _at_least(value: int, name: str, minimum: int) -> int:
    if value < minimum:
        raise QueryError(f"{name} must be >= {minimum}, got {value}")
    return value


def _encode(kind: str, *ids: int) -> str:
    return base64.urlsafe_b64encode(":".join([kind, *map(str, ids)]).encode()).decode()


def _decode(cursor: str | None, kind: str, n: int) -> list[int] | None:
    if cursor is None:
        return None
    try:
        parts = base64.urlsafe_b64decode(cursor.encode()).decode().split(":")
        if parts[0] != kind or len(parts) != n + 1:
            raise ValueError
        return [int(p) for p in parts[1:]]
    except (ValueError, UnicodeDecodeError):
        raise QueryError(f"invalid cursor {cursor!r}") from None


def _page_info(has_next: bool, cursor: str | None) -> PageInfo:
    from connectome_query.graphql_api.schema import PageInfo

    return PageInfo(has_next_page=has_next, end_cursor=cursor)


# -- types -------------------------------------------------------------------------------------
@strawberry.enum(description="Postsynaptic compartment of a synapse.")
class Compartment(Enum):
    SOMA = "soma"
    AXON = "axon"
    AIS = "ais"
    DENDRITE = "dendrite"
    UNKNOWN = "unknown"


@strawberry.enum(description="Which side of a neuron: its inputs (upstream) or outputs.")
class Direction(Enum):
    UPSTREAM = "upstream"
    DOWNSTREAM = "downstream"


@strawberry.type(description="One chemical synapse; location in nm.")
class Synapse:
    synapse_id: BodyIdT
    location: PointT
    compartment: str | None = strawberry.field(description="Postsynaptic compartment.")
    confidence: float | None
    size: float | None
    roi: str | None


def _synapse(row: dict[str, Any]) -> Synapse:
    from connectome_query.graphql_api.schema import Point

    return Synapse(synapse_id=row["synapseId"],
                   location=Point(x=row["x"], y=row["y"], z=row["z"]),
                   compartment=row.get("compartment"), confidence=row.get("confidence"),
                   size=row.get("size"), roi=row.get("roi"))


@strawberry.type(description="A presynaptic → postsynaptic neuron pair and the synapses "
                 "counted between them.")
class Contact:
    pre: NeuronT
    post: NeuronT
    synapse_count: int = strawberry.field(
        description="Synapses counted (onto the asked compartment, if any).")
    synapses: list[Synapse] = strawberry.field(
        description="The counted synapses by synapseId, at most synapsesPerContact.")
    post_is_chandelier: bool | None = None


@strawberry.type(description="A page of contacts ordered by (pre bodyId, post bodyId).")
class ContactPage:
    contacts: list[Contact]
    page_info: PageInfoT


def _contact(row: dict[str, Any]) -> Contact:
    return Contact(pre=_neuron(row["pre"]), post=_neuron(row["post"]),
                   synapse_count=int(row["synapseCount"]),
                   synapses=[_synapse(s) for s in row["synapses"]],
                   post_is_chandelier=row.get("postIsChandelier"))


def _contact_page(rows: list[dict[str, Any]], first: int) -> ContactPage:
    contacts = [_contact(r) for r in rows[:first]]
    cursor = (_encode("pair", int(contacts[-1].pre.body_id), int(contacts[-1].post.body_id))
              if contacts else None)
    return ContactPage(contacts=contacts, page_info=_page_info(len(rows) > first, cursor))


@strawberry.type(description="A cell innervated on its axon initial segment.")
class AisTarget:
    neuron: NeuronT
    synapse_count: int = strawberry.field(description="Synapses onto the AIS.")


class AisKey(NamedTuple):
    dataset: str
    body_id: int
    min_synapses: int
    first: int


async def _load_ais_targets(ctx: ApiContext, keys: list[AisKey]) -> list[list[dict[str, Any]]]:
    """One query per dataset for all chandelier cells asked about in a request."""
    out: dict[AisKey, list[dict[str, Any]]] = {}
    for dataset in {k.dataset for k in keys}:
        group = [k for k in keys if k.dataset == dataset]
        params = {"dataset": dataset, "keys": [
            {"key": i, "bodyId": k.body_id, "minSynapses": k.min_synapses, "first": k.first}
            for i, k in enumerate(group)]}
        rows = await read(ctx.driver, cq.AIS_TARGETS_BATCH, params, database=ctx.database,
                          timeout=query_timeout())
        by_key = {r["key"]: r["rows"] for r in rows}
        for i, k in enumerate(group):
            out[k] = by_key.get(i, [])
    return [out[k] for k in keys]


def ais_loader(ctx: ApiContext) -> DataLoader[AisKey, list[dict[str, Any]]]:
    """The request's DataLoader for AIS targets (created on first use)."""
    loader: DataLoader[AisKey, list[dict[str, Any]]] | None = getattr(ctx, "_ais_targets", None)
    if loader is None:
        async def load(keys: list[AisKey]) -> list[list[dict[str, Any]]]:
            return await _load_ais_targets(ctx, keys)

        loader = DataLoader(load_fn=load)
        ctx._ais_targets = loader  # type: ignore[attr-defined]
    return loader


@strawberry.type(description="A neuron classified as a chandelier (axo-axonic) cell at ingest.")
class ChandelierCell:
    neuron: NeuronT
    ais_output_fraction: float | None = strawberry.field(
        description="Output synapses onto AIS / output synapses of known compartment.")
    ais_output_synapses: int

    @strawberry.field(description="Cells whose AIS it innervates, most synapses first "
                      "(batched: one query for all cells of the page).")
    async def targets(self, info: Info[ApiContext, None], min_synapses: int = 1,
                      first: int = 100) -> list[AisTarget]:
        _page(first)
        _at_least(min_synapses, "minSynapses", 1)
        key = AisKey(self.neuron.dataset, int(self.neuron.body_id), min_synapses, first)
        rows = await ais_loader(info.context).load(key)
        return [AisTarget(neuron=_neuron(r["neuron"]), synapse_count=int(r["synapseCount"]))
                for r in rows]


@strawberry.type
class ChandelierPage:
    cells: list[ChandelierCell]
    page_info: PageInfoT
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
    partners: list[ConnectionT] = strawberry.field(
        description="Strongest first, at most partnersPerType.")


@strawberry.input(description="One neuron (bodyId or name) or every neuron of a type.")
class NeuronSelector:
    body_id: BodyIdT | None = None
    name: str | None = None
    type: str | None = None


def _selector(sel: NeuronSelector, what: str) -> dict[str, Any]:
    given = [v for v in (sel.body_id, sel.name, sel.type) if v is not None]
    if len(given) != 1:
        raise QueryError(f"{what}: give exactly one of bodyId, name or type")
    return {"bodyId": None if sel.body_id is None else int(sel.body_id), "name": sel.name,
            "type": sel.type}


async def _one_neuron(info: Info[ApiContext, None], dataset: str, sel: NeuronSelector) -> int:
    """The bodyId a selector names; it must name one neuron (by bodyId or name)."""
    if sel.type is not None or (sel.body_id is None) == (sel.name is None):
        raise QueryError("neuron: give exactly one of bodyId or name")
    if sel.body_id is not None:
        return int(sel.body_id)
    rows = await _read(info, cq.BODY_IDS_BY_NAME, {"dataset": dataset, "name": sel.name})
    if len(rows) != 1:
        raise QueryError(f"name {sel.name!r} matches {'no' if not rows else 'several'} "
                         "neurons" + ("; ask by bodyId" if rows else ""))
    return int(rows[0]["bodyId"])


@strawberry.type(description="A directed path; weights[i] joins neurons[i] to neurons[i+1].")
class Path:
    length: int
    neurons: list[NeuronT]
    weights: list[int]


@strawberry.type
class PathResult:
    paths: list[Path]
    truncated: bool = strawberry.field(description="More paths exist than were returned.")


def _path(row: dict[str, Any]) -> Path:
    return Path(length=len(row["weights"]), neurons=[_neuron(n) for n in row["neurons"]],
                weights=[int(w) for w in row["weights"]])


@strawberry.type(description="Two neurons connected both ways.")
class ReciprocalPair:
    a: NeuronT = strawberry.field(description="The one with the lower bodyId.")
    b: NeuronT
    forward: int = strawberry.field(description="Synapses a → b.")
    backward: int = strawberry.field(description="Synapses b → a.")


@strawberry.type
class ReciprocalPage:
    pairs: list[ReciprocalPair]
    page_info: PageInfoT


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
    body_id: BodyIdT | None = None
    chandelier: bool | None = None


@strawberry.type
class MotifBinding:
    name: str
    neuron: NeuronT


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
    page_info: PageInfoT


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
    segments: list[BodyIdT]
    synapse_count: int


async def _motif_page(info: Info[ApiContext, None], dataset: str, edges: list[EdgeSpec],
                      nodes: list[NodeSpec], first: int, after: str | None) -> MotifPage:
    await _dataset(info, dataset)
    _page(first)
    motif = compile_motif(edges, nodes)
    start = _decode(after, "motif", len(motif.names))
    first_id = motif.params["nodes"][0]["bodyId"]
    params = {**motif.params, "dataset": dataset, "limit": first + 1, "after": start,
              "start": max(start[0] if start else -1, -1 if first_id is None else first_id),
              "stop": 2**63 - 1 if first_id is None else first_id}
    rows = await _read(info, motif.cypher, params)
    matches = []
    for row in rows[:first]:
        neurons = [_neuron(n) for n in row["neurons"]]
        matches.append(MotifMatch(
            nodes=[MotifBinding(name=name, neuron=n)
                   for name, n in zip(motif.names, neurons, strict=True)],
            edges=[MotifEdgeWeight(source=motif.names[s], target=motif.names[t], weight=int(w))
                   for (_, s, t), w in zip(motif.present, row["weights"], strict=True)],
        ))
    cursor = None
    if matches:
        cursor = _encode("motif", *(int(b.neuron.body_id) for b in matches[-1].nodes))
    return MotifPage(matches=matches, page_info=_page_info(len(rows) > first, cursor))


# -- the query fields ----------------------------------------------------------------------------
@strawberry.type
class CircuitQuery:
    @strawberry.field(description="Chandelier cells (classified at ingest), by bodyId, paged.")
    async def chandelier_cells(self, info: Info[ApiContext, None], dataset: str,
                               first: int = 100, after: str | None = None) -> ChandelierPage:
        await _dataset(info, dataset)
        _page(first)
        start = _decode(after, "bodyId", 1)
        params = {"dataset": dataset, "after": start[0] if start else -1, "limit": first + 1}
        rows = await _read(info, cq.CHANDELIER_CELLS, params)
        total = await _read(info, cq.CHANDELIER_COUNT, params)
        cells = [ChandelierCell(neuron=_neuron(r["neuron"]),
                                ais_output_fraction=r["aisOutputFraction"],
                                ais_output_synapses=int(r["aisOutputSynapses"] or 0))
                 for r in rows[:first]]
        cursor = _encode("bodyId", int(cells[-1].neuron.body_id)) if cells else None
        return ChandelierPage(cells=cells, page_info=_page_info(len(rows) > first, cursor),
                              total_count=int(total[0]["total"]))

    @strawberry.field(description="Chandelier → AIS contacts with their synapses. Give `pre` for "
                      "one chandelier cell's targets, `post` for one cell's chandelier inputs "
                      "(the inverse), `postChandelier: true` for chandelier-to-chandelier AIS "
                      "contacts.")
    async def chandelier_innervation(
        self, info: Info[ApiContext, None], dataset: str, pre: BodyIdT | None = None,
        post: BodyIdT | None = None, post_chandelier: bool | None = None,
        min_synapses: int = 1, synapses_per_contact: int = 50, first: int = 100,
        after: str | None = None,
    ) -> ContactPage:
        await _dataset(info, dataset)
        _page(first)
        _at_least(min_synapses, "minSynapses", 1)
        _page(synapses_per_contact, "synapsesPerContact", MAX_SYNAPSES_PER_CONTACT)
        start = _decode(after, "pair", 2) or [-1, -1]
        params = {"dataset": dataset, "pre": None if pre is None else int(pre),
                  "post": None if post is None else int(post), "postChandelier": post_chandelier,
                  "minSynapses": min_synapses, "perContact": synapses_per_contact,
                  "afterPre": start[0], "afterPost": start[1], "limit": first + 1,
                  # one range seek: [after, +inf), or just `pre`
                  "preLow": max(start[0], -1 if pre is None else int(pre)),
                  "preHigh": 2**63 - 1 if pre is None else int(pre)}
        text = cq.AIS_CONTACTS_TO_POST if post is not None and pre is None \
            else cq.AIS_CONTACTS_FROM_PRE
        rows = await _read(info, text, params)
        return _contact_page(rows, first)

    @strawberry.field(description="Neuron pairs joined by at least minSynapses synapses (onto "
                      "`compartment` if given), optionally between given types, with their "
                      "synapses; keyset-paged by (pre, post) bodyId.")
    async def multi_synaptic_contacts(
        self, info: Info[ApiContext, None], dataset: str, min_synapses: int = 2,
        pre_type: str | None = None, post_type: str | None = None,
        compartment: Compartment | None = None, synapses_per_contact: int = 20,
        first: int = 100, after: str | None = None,
    ) -> ContactPage:
        await _dataset(info, dataset)
        _page(first)
        _at_least(min_synapses, "minSynapses", 1)
        if not 0 <= synapses_per_contact <= MAX_SYNAPSES_PER_CONTACT:
            raise QueryError("synapsesPerContact must be between 0 and "
                             f"{MAX_SYNAPSES_PER_CONTACT}, got {synapses_per_contact}")
        start = _decode(after, "pair", 2) or [-1, -1]
        params = {"dataset": dataset, "minSynapses": min_synapses, "preType": pre_type,
                  "postType": post_type, "perContact": synapses_per_contact,
                  "compartment": compartment.value if compartment else None,
                  "afterPre": start[0], "afterPost": start[1], "limit": first + 1}
        text = cq.MULTI_SYNAPTIC_COMPARTMENT if compartment else cq.MULTI_SYNAPTIC
        return _contact_page(await _read(info, text, params), first)

    @strawberry.field(description="Histogram of synapses per connection (onto `compartment` if "
                      "given; then connections with none are left out).")
    async def synapses_per_connection(
        self, info: Info[ApiContext, None], dataset: str, pre_type: str | None = None,
        post_type: str | None = None, compartment: Compartment | None = None,
    ) -> list[HistogramBin]:
        await _dataset(info, dataset)
        params = {"dataset": dataset, "preType": pre_type, "postType": post_type,
                  "compartment": compartment.value if compartment else None}
        text = cq.SYNAPSE_HISTOGRAM_COMPARTMENT if compartment else cq.SYNAPSE_HISTOGRAM
        rows = await _read(info, text, params)
        return [HistogramBin(synapses=int(r["synapses"]), connections=int(r["connections"]))
                for r in rows]

    @strawberry.field(description="A neuron's partners grouped by type, most synapses first. "
                      "`roi` counts synapses in that ROI (from the connection's roiInfo, or the "
                      "synapses when a compartment is given too); `compartment` counts synapses "
                      "onto that postsynaptic compartment. minWeight applies to that count.")
    async def partners_by_type(
        self, info: Info[ApiContext, None], dataset: str, neuron: NeuronSelector,
        direction: Direction = Direction.DOWNSTREAM, min_weight: int = 1,
        roi: str | None = None, compartment: Compartment | None = None,
        partners_per_type: int = 10,
    ) -> list[PartnerTypeGroup]:
        from connectome_query.graphql_api.schema import Connection

        await _dataset(info, dataset)
        _at_least(min_weight, "minWeight", 1)
        _page(partners_per_type, "partnersPerType")
        body_id = await _one_neuron(info, dataset, neuron)
        params = {"dataset": dataset, "bodyId": body_id, "minWeight": min_weight,
                  "roi": roi, "compartment": compartment.value if compartment else None,
                  "perType": partners_per_type}
        text = cq.PARTNER_TYPES[(direction.value, compartment is not None)]
        rows = await _read(info, text, params)
        return [PartnerTypeGroup(
            type=r["type"], neurons=int(r["neurons"]), synapses=int(r["synapses"]),
            partners=[Connection(weight=int(p["weight"]), partner=_neuron(p["partner"]))
                      for p in r["partners"]]) for r in rows]

    @strawberry.field(description="All shortest chemical paths (each hop ≥ minWeight synapses) "
                      "from source to target, up to maxLength hops. With types, the shortest "
                      "over every (source, target) pair.")
    async def shortest_paths(
        self, info: Info[ApiContext, None], dataset: str, source: NeuronSelector,
        target: NeuronSelector, min_weight: int = 1, max_length: int = 6, first: int = 100,
    ) -> PathResult:
        return await _paths(info, dataset, source, target, min_weight, max_length, first,
                            shortest=True)

    @strawberry.field(description="All simple paths (no repeated neuron) of 1..maxLength hops, "
                      "each hop ≥ minWeight synapses; shortest first, then by bodyIds.")
    async def simple_paths(
        self, info: Info[ApiContext, None], dataset: str, source: NeuronSelector,
        target: NeuronSelector, min_weight: int = 1, max_length: int = 3, first: int = 100,
    ) -> PathResult:
        return await _paths(info, dataset, source, target, min_weight, max_length, first,
                            shortest=False)

    @strawberry.field(description="Pairs connected both ways (each direction ≥ minWeight).")
    async def reciprocal_pairs(
        self, info: Info[ApiContext, None], dataset: str, min_weight: int = 1,
        type: str | None = None, first: int = 100, after: str | None = None,
    ) -> ReciprocalPage:
        await _dataset(info, dataset)
        _page(first)
        _at_least(min_weight, "minWeight", 1)
        start = _decode(after, "pair", 2) or [-1, -1]
        params = {"dataset": dataset, "minWeight": min_weight, "type": type,
                  "afterPre": start[0], "afterPost": start[1], "limit": first + 1}
        rows = await _read(info, cq.RECIPROCAL_PAIRS, params)
        pairs = [ReciprocalPair(a=_neuron(r["a"]), b=_neuron(r["b"]), forward=int(r["forward"]),
                                backward=int(r["backward"])) for r in rows[:first]]
        cursor = (_encode("pair", int(pairs[-1].a.body_id), int(pairs[-1].b.body_id))
                  if pairs else None)
        return ReciprocalPage(pairs=pairs, page_info=_page_info(len(rows) > first, cursor))

    @strawberry.field(description="Feed-forward loops a → b → c with a → c (every edge ≥ "
                      "minWeight); the motif named a, b, c.")
    async def feed_forward_loops(
        self, info: Info[ApiContext, None], dataset: str, min_weight: int = 1,
        first: int = 100, after: str | None = None,
    ) -> MotifPage:
        _at_least(min_weight, "minWeight", 1)
        edges = [EdgeSpec(e.source, e.target, min_weight) for e in FEED_FORWARD_LOOP]
        return await _motif_page(info, dataset, edges, [], first, after)

    @strawberry.field(description="Matches of a motif: edges between named nodes with weight "
                      "bounds or `absent`, and node constraints; distinct neurons per name.")
    async def motif(
        self, info: Info[ApiContext, None], dataset: str, edges: list[MotifEdgeInput],
        nodes: list[MotifNodeInput] | None = None, first: int = 100, after: str | None = None,
    ) -> MotifPage:
        specs = [EdgeSpec(e.source, e.target, e.min_weight, e.max_weight, e.absent)
                 for e in edges]
        node_specs = [NodeSpec(n.name, n.type, n.cell_class,
                               None if n.body_id is None else int(n.body_id), n.chandelier)
                      for n in nodes or []]
        return await _motif_page(info, dataset, specs, node_specs, first, after)

    @strawberry.field(description="Cell types and how many neurons each has.")
    async def cell_types(self, info: Info[ApiContext, None], dataset: str,
                         types: list[str] | None = None) -> list[CellType]:
        await _dataset(info, dataset)
        rows = await _read(info, cq.CELL_TYPES, {"dataset": dataset, "types": types})
        return [CellType(type=r["type"], neurons=int(r["neurons"])) for r in rows]

    @strawberry.field(description="Type × type chemical connectivity: synapses, connections "
                      "and neuron counts, strongest first.")
    async def type_connectivity(
        self, info: Info[ApiContext, None], dataset: str, pre_types: list[str] | None = None,
        post_types: list[str] | None = None, min_weight: int = 1, first: int = 1000,
    ) -> list[TypeConnection]:
        await _dataset(info, dataset)
        _at_least(min_weight, "minWeight", 1)
        _page(first, maximum=100_000)
        params = {"dataset": dataset, "preTypes": pre_types, "postTypes": post_types,
                  "minWeight": min_weight, "limit": first}
        rows = await _read(info, cq.TYPE_CONNECTIVITY, params)
        wanted = sorted({r["preType"] for r in rows} | {r["postType"] for r in rows})
        sizes = {r["type"]: int(r["neurons"]) for r in await _read(
            info, cq.CELL_TYPES, {"dataset": dataset, "types": wanted})}
        return [TypeConnection(
            pre_type=r["preType"], post_type=r["postType"], synapses=int(r["synapses"]),
            connections=int(r["connections"]), pre_neurons=int(r["preNeurons"]),
            post_neurons=int(r["postNeurons"]), pre_type_neurons=sizes.get(r["preType"], 0),
            post_type_neurons=sizes.get(r["postType"], 0)) for r in rows]

    @strawberry.field(description="A Neuroglancer link showing neurons and synapses (by id, or "
                      "all synapses pre → post). Needs volumes recorded at ingest.")
    async def neuroglancer(
        self, info: Info[ApiContext, None], dataset: str, body_ids: list[BodyIdT] | None = None,
        synapse_ids: list[BodyIdT] | None = None, pre: BodyIdT | None = None,
        post: BodyIdT | None = None,
    ) -> NeuroglancerLink:
        await _dataset(info, dataset)
        meta = (await _read(info, cq.META_VOLUMES, {"dataset": dataset}))[0]
        if not meta["segmentation"]:
            raise QueryError(f"dataset {dataset!r} has no volumes: no neuroglancerSource was "
                             "recorded at ingest (connectome ingest --neuroglancer-source)")
        if (pre is None) != (post is None):
            raise QueryError("give both pre and post, or neither")
        ids = [int(b) for b in body_ids or []]
        syn_ids = [int(s) for s in synapse_ids or []]
        if len(syn_ids) > MAX_NEUROGLANCER_SYNAPSES:
            raise QueryError(f"at most {MAX_NEUROGLANCER_SYNAPSES} synapseIds")
        rows: list[dict[str, Any]] = []
        if syn_ids:
            rows += await _read(info, cq.SYNAPSES_BY_ID, {"dataset": dataset, "ids": syn_ids})
            missing = set(syn_ids) - {int(r["synapse"]["synapseId"]) for r in rows}
            if missing:
                raise QueryError(f"unknown synapse id(s) {sorted(missing)[:5]}")
        if pre is not None and post is not None:
            rows += await _read(info, cq.SYNAPSES_OF_PAIR, {
                "dataset": dataset, "pre": int(pre), "post": int(post),
                "limit": MAX_NEUROGLANCER_SYNAPSES})
            ids += [int(pre), int(post)]
        for r in rows:
            ids += [int(r["pre"]), int(r["post"])]
        segments = list(dict.fromkeys(ids))
        if not segments:
            raise QueryError("give bodyIds, synapseIds, or pre and post")
        synapses = list({int(r["synapse"]["synapseId"]): r["synapse"] for r in rows}.values())
        center = None
        if not synapses:
            somas = await _read(info, cq.NEURON_SOMAS, {"dataset": dataset, "ids": segments})
            found = [r["soma"] for r in somas if r["soma"] is not None]
            if found:
                center = [found[0].x, found[0].y, found[0].z]
        try:
            state = viewer_state(segmentation=meta["segmentation"], segments=segments,
                                 synapses=synapses, voxel_size_nm=meta["voxelSize"],
                                 image=meta["image"], center_nm=center)
        except ValueError as exc:
            raise QueryError(f"dataset {dataset!r}: {exc}") from None
        return NeuroglancerLink(url=state_url(state, meta["base"]),
                                state=json.dumps(state, separators=(",", ":")),
                                segments=segments,  # type: ignore[arg-type]
                                synapse_count=len(synapses))


async def _paths(info: Info[ApiContext, None], dataset: str, source: NeuronSelector,
                 target: NeuronSelector, min_weight: int, max_length: int, first: int, *,
                 shortest: bool) -> PathResult:
    await _dataset(info, dataset)
    _page(first)
    _at_least(min_weight, "minWeight", 1)
    limit = cq.MAX_SHORTEST_LENGTH if shortest else cq.MAX_PATH_LENGTH
    if not 1 <= max_length <= limit:
        raise QueryError(f"maxLength must be between 1 and {limit}, got {max_length}")
    params = {"dataset": dataset, "source": _selector(source, "source"),
              "target": _selector(target, "target"), "minWeight": min_weight,
              "limit": first + 1}
    counts = (await _read(info, cq.COUNT_ENDPOINTS, params))[0]
    if counts["sources"] * counts["targets"] > MAX_ENDPOINT_PAIRS:
        raise QueryError(f"{counts['sources']} sources × {counts['targets']} targets is more "
                         f"than {MAX_ENDPOINT_PAIRS} pairs; choose smaller types")
    text = (cq.SHORTEST_PATHS if shortest else cq.SIMPLE_PATHS)[max_length]
    rows = await _read(info, text, params)
    return PathResult(paths=[_path(r) for r in rows[:first]], truncated=len(rows) > first)
