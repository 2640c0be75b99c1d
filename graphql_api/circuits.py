"""Circuit queries: chandelier→AIS, multi-synaptic contacts, partners by type, paths, motifs,
cell-type connectivity and Neuroglancer links, one field each (see `graphql_api/CIRCUITS.md`).

`CircuitQuery` is mixed into the schema's `Query`; its types are in `circuit_types`, its Cypher
in `circuit_cypher`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from connectome_query.graphql_api import circuit_cypher as cq
from connectome_query.graphql_api.access import require_dataset
from connectome_query.graphql_api.circuit_types import (
    CellType,
    ChandelierCell,
    ChandelierPage,
    ContactPage,
    Direction,
    HistogramBin,
    MotifBinding,
    MotifEdgeInput,
    MotifEdgeWeight,
    MotifMatch,
    MotifNodeInput,
    MotifPage,
    NeuroglancerLink,
    NeuronSelector,
    PartnerTypeGroup,
    PathResult,
    ReciprocalPage,
    ReciprocalPair,
    TypeConnection,
    contact_from_row,
    path_from_row,
)
from connectome_query.graphql_api.context import ApiContext
from connectome_query.graphql_api.errors import QueryError
from connectome_query.graphql_api.motifs import FEED_FORWARD_LOOP, EdgeSpec, NodeSpec, compile_motif
from connectome_query.graphql_api.neuroglancer import state_url, viewer_state
from connectome_query.graphql_api.pagination import at_least, check_page, decode_cursor, keyset_page
from connectome_query.graphql_api.types import BodyId, Compartment, Connection, neuron_from_row
from connectome_query.graphql_api.web import viewer as web_viewer

MAX_SYNAPSES_PER_CONTACT = 1000
MAX_ENDPOINT_PAIRS = 2500
"""Paths between types: at most this many (source, target) neuron pairs."""
MAX_NEUROGLANCER_SYNAPSES = 5000


async def _read(info: Info[ApiContext, None], cypher: str,
                params: dict[str, Any]) -> list[dict[str, Any]]:
    return await info.context.read_circuit(cypher, params)


def _contact_page(rows: list[dict[str, Any]], first: int) -> ContactPage:
    contacts, page = keyset_page(rows, first, "pair", contact_from_row,
                                 lambda c: [int(c.pre.body_id), int(c.post.body_id)])
    return ContactPage(contacts=contacts, page_info=page)


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


async def _motif_page(info: Info[ApiContext, None], dataset: str, edges: list[EdgeSpec],
                      nodes: list[NodeSpec], first: int, after: str | None,
                      version: int | None = None) -> MotifPage:
    dataset = await require_dataset(info, dataset, version)
    check_page(first)
    motif = compile_motif(edges, nodes)
    start = decode_cursor(after, "motif", len(motif.names))
    first_id = motif.params["nodes"][0]["bodyId"]
    params = {**motif.params, "dataset": dataset, "limit": first + 1, "after": start,
              "start": max(start[0] if start else -1, -1 if first_id is None else first_id),
              "stop": 2**63 - 1 if first_id is None else first_id}
    rows = await _read(info, motif.cypher, params)

    def match(row: dict[str, Any]) -> MotifMatch:
        neurons = [neuron_from_row(n) for n in row["neurons"]]
        return MotifMatch(
            nodes=[MotifBinding(name=name, neuron=n)
                   for name, n in zip(motif.names, neurons, strict=True)],
            edges=[MotifEdgeWeight(source=motif.names[s], target=motif.names[t], weight=int(w))
                   for (_, s, t), w in zip(motif.present, row["weights"], strict=True)],
        )

    matches, page = keyset_page(rows, first, "motif", match,
                                lambda m: [int(b.neuron.body_id) for b in m.nodes])
    return MotifPage(matches=matches, page_info=page)


Version = Annotated[int | None, strawberry.argument(
    description="That version of the dataset (default: the current one).")]


# -- the query fields ----------------------------------------------------------------------------
@strawberry.type
class CircuitQuery:
    @strawberry.field(description="Chandelier cells (classified at ingest), by bodyId, paged.")
    async def chandelier_cells(self, info: Info[ApiContext, None], dataset: str,
                               first: int = 100, after: str | None = None,
                               version: Version = None) -> ChandelierPage:
        dataset = await require_dataset(info, dataset, version)
        check_page(first)
        start = decode_cursor(after, "bodyId", 1)
        params = {"dataset": dataset, "after": start[0] if start else -1, "limit": first + 1}
        rows = await _read(info, cq.CHANDELIER_CELLS, params)
        total = await _read(info, cq.CHANDELIER_COUNT, params)
        cells, page = keyset_page(
            rows, first, "bodyId",
            lambda r: ChandelierCell(neuron=neuron_from_row(r["neuron"]),
                                     ais_output_fraction=r["aisOutputFraction"],
                                     ais_output_synapses=int(r["aisOutputSynapses"] or 0)),
            lambda c: [int(c.neuron.body_id)])
        return ChandelierPage(cells=cells, page_info=page, total_count=int(total[0]["total"]))

    @strawberry.field(description="Chandelier → AIS contacts with their synapses. Give `pre` for "
                      "one chandelier cell's targets, `post` for one cell's chandelier inputs "
                      "(the inverse), `postChandelier: true` for chandelier-to-chandelier AIS "
                      "contacts.")
    async def chandelier_innervation(
        self, info: Info[ApiContext, None], dataset: str, pre: BodyId | None = None,
        post: BodyId | None = None, post_chandelier: bool | None = None,
        min_synapses: int = 1, synapses_per_contact: int = 50, first: int = 100,
        after: str | None = None, version: Version = None,
    ) -> ContactPage:
        dataset = await require_dataset(info, dataset, version)
        check_page(first)
        at_least(min_synapses, "minSynapses", 1)
        check_page(synapses_per_contact, "synapsesPerContact", MAX_SYNAPSES_PER_CONTACT)
        start = decode_cursor(after, "pair", 2) or [-1, -1]
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
        first: int = 100, after: str | None = None, version: Version = None,
    ) -> ContactPage:
        dataset = await require_dataset(info, dataset, version)
        check_page(first)
        at_least(min_synapses, "minSynapses", 1)
        if not 0 <= synapses_per_contact <= MAX_SYNAPSES_PER_CONTACT:
            raise QueryError("synapsesPerContact must be between 0 and "
                             f"{MAX_SYNAPSES_PER_CONTACT}, got {synapses_per_contact}")
        start = decode_cursor(after, "pair", 2) or [-1, -1]
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
        version: Version = None,
    ) -> list[HistogramBin]:
        dataset = await require_dataset(info, dataset, version)
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
        partners_per_type: int = 10, version: Version = None,
    ) -> list[PartnerTypeGroup]:
        dataset = await require_dataset(info, dataset, version)
        at_least(min_weight, "minWeight", 1)
        check_page(partners_per_type, "partnersPerType")
        body_id = await _one_neuron(info, dataset, neuron)
        params = {"dataset": dataset, "bodyId": body_id, "minWeight": min_weight,
                  "roi": roi, "compartment": compartment.value if compartment else None,
                  "perType": partners_per_type}
        text = cq.PARTNER_TYPES[(direction.value, compartment is not None)]
        rows = await _read(info, text, params)
        return [PartnerTypeGroup(
            type=r["type"], neurons=int(r["neurons"]), synapses=int(r["synapses"]),
            partners=[Connection(weight=int(p["weight"]), partner=neuron_from_row(p["partner"]))
                      for p in r["partners"]]) for r in rows]

    @strawberry.field(description="All shortest chemical paths (each hop ≥ minWeight synapses) "
                      "from source to target, up to maxLength hops. With types, the shortest "
                      "over every (source, target) pair.")
    async def shortest_paths(
        self, info: Info[ApiContext, None], dataset: str, source: NeuronSelector,
        target: NeuronSelector, min_weight: int = 1, max_length: int = 6, first: int = 100,
        version: Version = None,
    ) -> PathResult:
        return await _paths(info, dataset, source, target, min_weight, max_length, first,
                            shortest=True, version=version)

    @strawberry.field(description="All simple paths (no repeated neuron) of 1..maxLength hops, "
                      "each hop ≥ minWeight synapses; shortest first, then by bodyIds.")
    async def simple_paths(
        self, info: Info[ApiContext, None], dataset: str, source: NeuronSelector,
        target: NeuronSelector, min_weight: int = 1, max_length: int = 3, first: int = 100,
        version: Version = None,
    ) -> PathResult:
        return await _paths(info, dataset, source, target, min_weight, max_length, first,
                            shortest=False, version=version)

    @strawberry.field(description="Pairs connected both ways (each direction ≥ minWeight).")
    async def reciprocal_pairs(
        self, info: Info[ApiContext, None], dataset: str, min_weight: int = 1,
        type: str | None = None, first: int = 100, after: str | None = None,
        version: Version = None,
    ) -> ReciprocalPage:
        dataset = await require_dataset(info, dataset, version)
        check_page(first)
        at_least(min_weight, "minWeight", 1)
        start = decode_cursor(after, "pair", 2) or [-1, -1]
        params = {"dataset": dataset, "minWeight": min_weight, "type": type,
                  "afterPre": start[0], "afterPost": start[1], "limit": first + 1}
        rows = await _read(info, cq.RECIPROCAL_PAIRS, params)
        pairs, page = keyset_page(
            rows, first, "pair",
            lambda r: ReciprocalPair(a=neuron_from_row(r["a"]), b=neuron_from_row(r["b"]),
                                     forward=int(r["forward"]), backward=int(r["backward"])),
            lambda p: [int(p.a.body_id), int(p.b.body_id)])
        return ReciprocalPage(pairs=pairs, page_info=page)

    @strawberry.field(description="Feed-forward loops a → b → c with a → c (every edge ≥ "
                      "minWeight); the motif named a, b, c.")
    async def feed_forward_loops(
        self, info: Info[ApiContext, None], dataset: str, min_weight: int = 1,
        first: int = 100, after: str | None = None, version: Version = None,
    ) -> MotifPage:
        at_least(min_weight, "minWeight", 1)
        edges = [EdgeSpec(e.source, e.target, min_weight) for e in FEED_FORWARD_LOOP]
        return await _motif_page(info, dataset, edges, [], first, after, version)

    @strawberry.field(description="Matches of a motif: edges between named nodes with weight "
                      "bounds or `absent`, and node constraints; distinct neurons per name.")
    async def motif(
        self, info: Info[ApiContext, None], dataset: str, edges: list[MotifEdgeInput],
        nodes: list[MotifNodeInput] | None = None, first: int = 100, after: str | None = None,
        version: Version = None,
    ) -> MotifPage:
        specs = [EdgeSpec(e.source, e.target, e.min_weight, e.max_weight, e.absent)
                 for e in edges]
        node_specs = [NodeSpec(n.name, n.type, n.cell_class,
                               None if n.body_id is None else int(n.body_id), n.chandelier)
                      for n in nodes or []]
        return await _motif_page(info, dataset, specs, node_specs, first, after, version)

    @strawberry.field(description="Cell types and how many neurons each has.")
    async def cell_types(self, info: Info[ApiContext, None], dataset: str,
                         types: list[str] | None = None, version: Version = None) -> list[CellType]:
        dataset = await require_dataset(info, dataset, version)
        rows = await _read(info, cq.CELL_TYPES, {"dataset": dataset, "types": types})
        return [CellType(type=r["type"], neurons=int(r["neurons"])) for r in rows]

    @strawberry.field(description="Type × type chemical connectivity: synapses, connections "
                      "and neuron counts, strongest first.")
    async def type_connectivity(
        self, info: Info[ApiContext, None], dataset: str, pre_types: list[str] | None = None,
        post_types: list[str] | None = None, min_weight: int = 1, first: int = 1000,
        version: Version = None,
    ) -> list[TypeConnection]:
        dataset = await require_dataset(info, dataset, version)
        at_least(min_weight, "minWeight", 1)
        check_page(first, maximum=100_000)
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
        self, info: Info[ApiContext, None], dataset: str, body_ids: list[BodyId] | None = None,
        synapse_ids: list[BodyId] | None = None, pre: BodyId | None = None,
        post: BodyId | None = None, version: Version = None,
    ) -> NeuroglancerLink:
        name = dataset
        dataset = await require_dataset(info, dataset, version)
        meta = served_volumes(info, name, (await _read(info, cq.META_VOLUMES,
                                                       {"dataset": dataset}))[0])
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
        ours = meta.get("ourViewer")
        url = web_viewer.viewer_url(ours, state) if ours else state_url(state, meta["base"])
        return NeuroglancerLink(url=url,
                                state=json.dumps(state, separators=(",", ":")),
                                segments=segments,  # type: ignore[arg-type]
                                synapse_count=len(synapses))


def served_volumes(info: Info[ApiContext, None], name: str,
                   meta: dict[str, Any]) -> dict[str, Any]:
    """Volumes recorded at ingest as files (a reconstruction run) are the ones this API serves
    under /volumes, shown in the viewer it serves (`web.viewer`, its link carrying the state in
    the path); sources given as URLs win, and so does a recorded viewer address."""
    request = getattr(info.context, "request", None)
    if meta["segmentation"] or not meta.get("runDirectory") or request is None:
        return meta
    base = str(request.base_url)
    root = f"precomputed://{base}volumes/{name}"
    return {**meta, "segmentation": f"{root}/segmentation",
            "image": meta["image"] or (f"{root}/image" if meta.get("emDirectory") else None),
            "base": meta["base"], "ourViewer": None if meta["base"] else base}


async def _paths(info: Info[ApiContext, None], dataset: str, source: NeuronSelector,
                 target: NeuronSelector, min_weight: int, max_length: int, first: int, *,
                 shortest: bool, version: int | None = None) -> PathResult:
    dataset = await require_dataset(info, dataset, version)
    check_page(first)
    at_least(min_weight, "minWeight", 1)
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
    return PathResult(paths=[path_from_row(r) for r in rows[:first]], truncated=len(rows) > first)
