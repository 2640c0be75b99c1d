"""The GraphQL schema: datasets, neurons (by id, by name, filtered and paged) and partners."""

from __future__ import annotations

import base64
from typing import Any, NewType

import strawberry
from strawberry.extensions import MaskErrors, MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.printer import print_schema
from strawberry.schema.config import StrawberryConfig
from strawberry.types import Info

from connectome_query.graphql_api import cypher
from connectome_query.graphql_api.auth import readable, require_read
from connectome_query.graphql_api.circuits import CircuitQuery
from connectome_query.graphql_api.context import ApiContext, PartnerKey
from connectome_query.graphql_api.db import read
from connectome_query.graphql_api.errors import QueryError, should_mask
from connectome_query.graphql_api.export_graphql import (
    ConnectivityMatrix,
    resolve_connectivity_matrix,
)
from connectome_query.schema.model import DATASET_NAME

MAX_PAGE = 1000
MAX_DEPTH = 10
MAX_ALIASES = 30
MAX_TOKENS = 2000


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


@strawberry.type(description="A point in the dataset's coordinates (nm where known).")
class Point:
    x: float
    y: float
    z: float


@strawberry.type(description="A reconstructed cell (neuPrint's Neuron).")
class Neuron:
    body_id: BodyId
    dataset: str
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

    @strawberry.field(description="Presynaptic partners, strongest first.")
    async def upstream(self, info: Info[ApiContext, None], min_weight: int = 1,
                       first: int = 100) -> list[Connection]:
        return await _partners(info, "upstream", self, min_weight, first)

    @strawberry.field(description="Postsynaptic partners, strongest first.")
    async def downstream(self, info: Info[ApiContext, None], min_weight: int = 1,
                         first: int = 100) -> list[Connection]:
        return await _partners(info, "downstream", self, min_weight, first)

    @strawberry.field(description="Gap-junction partners (undirected), strongest first.")
    async def electrical_partners(self, info: Info[ApiContext, None], min_weight: int = 1,
                                  first: int = 100) -> list[Connection]:
        return await _partners(info, "electrical", self, min_weight, first)


@strawberry.type(description="A partner and the synapse count between the two cells.")
class Connection:
    weight: int
    partner: Neuron


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class NeuronEdge:
    cursor: str
    node: Neuron


@strawberry.type(description="A page of neurons ordered by bodyId (keyset pagination).")
class NeuronConnection:
    edges: list[NeuronEdge]
    page_info: PageInfo
    total_count: int


def neuron_from_row(row: dict[str, Any]) -> Neuron:
    soma = row.get("soma")
    return Neuron(
        body_id=row["bodyId"], dataset=row["dataset"], instance=row.get("instance"),
        type=row.get("type"), cell_class=row.get("cellClass"),
        neurotransmitter=row.get("neurotransmitter"), status=row.get("status"),
        pre=row.get("pre") or 0, post=row.get("post") or 0,
        upstream_partners=row.get("upstreamPartners") or 0,
        downstream_partners=row.get("downstreamPartners") or 0,
        gap_junctions=row.get("gapJunctions") or 0, size=row.get("size"),
        soma_location=Point(x=soma[0], y=soma[1], z=soma[2]) if soma else None,
    )


def _check_page(first: int) -> None:
    if not 1 <= first <= MAX_PAGE:
        raise QueryError(f"first must be between 1 and {MAX_PAGE}, got {first}")


def check_dataset(name: str) -> str:
    if not DATASET_NAME.match(name):
        raise QueryError(f"invalid dataset name {name!r}")
    return name


async def require_dataset(info: Info[ApiContext, None], name: str) -> None:
    """Raise a clear error for a dataset that is not in the graph or not readable."""
    check_dataset(name)
    await require_read(info, name)
    if name not in await info.context.dataset_names():
        raise QueryError(f"unknown dataset {name!r}")


async def _partners(info: Info[ApiContext, None], direction: str, neuron: Neuron,
                    min_weight: int, first: int) -> list[Connection]:
    _check_page(first)
    if min_weight < 0:
        raise QueryError(f"minWeight must be >= 0, got {min_weight}")
    key = PartnerKey(direction, neuron.dataset, int(neuron.body_id), min_weight, first)
    rows = await info.context.partners.load(key)
    return [Connection(weight=r["weight"], partner=neuron_from_row(r["partner"])) for r in rows]


def _encode_cursor(body_id: int) -> str:
    return base64.urlsafe_b64encode(f"bodyId:{body_id}".encode()).decode()


def _decode_cursor(cursor: str) -> int:
    try:
        kind, value = base64.urlsafe_b64decode(cursor.encode()).decode().split(":", 1)
        if kind != "bodyId":
            raise ValueError
        return int(value)
    except (ValueError, UnicodeDecodeError):
        raise QueryError(f"invalid cursor {cursor!r}") from None


@strawberry.type
class Query(CircuitQuery):
    connectivity_matrix: ConnectivityMatrix = strawberry.field(
        resolver=resolve_connectivity_matrix,
        description="Connectivity matrix of a dataset or subset: entries inline when small, "
        "a download URL (streamed CSV/Parquet/Arrow/NPZ/Matrix Market) for any size.")

    @strawberry.field(description="Datasets in the graph.")
    async def datasets(self, info: Info[ApiContext, None]) -> list[Dataset]:
        rows = await read(info.context.driver, cypher.DATASETS, {"name": None})
        allowed = set(await readable(info, [r["meta"]["dataset"] for r in rows]))
        return [_dataset_from_meta(r["meta"]) for r in rows if r["meta"]["dataset"] in allowed]

    @strawberry.field(description="One dataset by name.")
    async def dataset(self, info: Info[ApiContext, None], name: str) -> Dataset | None:
        check_dataset(name)
        await require_read(info, name)
        rows = await read(info.context.driver, cypher.DATASETS, {"name": name})
        return _dataset_from_meta(rows[0]["meta"]) if rows else None

    @strawberry.field(description="A neuron by bodyId or by name (instance).")
    async def neuron(
        self,
        info: Info[ApiContext, None],
        dataset: str,
        body_id: BodyId | None = None,
        name: str | None = None,
    ) -> Neuron | None:
        await require_dataset(info, dataset)
        if (body_id is None) == (name is None):
            raise QueryError("give exactly one of bodyId or name")
        if body_id is not None:
            rows = await read(info.context.driver, cypher.NEURON_BY_ID,
                              {"dataset": dataset, "bodyId": int(body_id)})
        else:
            rows = await read(info.context.driver, cypher.NEURONS_BY_NAME,
                              {"dataset": dataset, "name": name})
            if len(rows) > 1:
                raise QueryError(f"name {name!r} matches several neurons; ask by bodyId")
        return neuron_from_row(rows[0]["neuron"]) if rows else None

    @strawberry.field(description="Neurons of a dataset, filtered by type or class, paged.")
    async def neurons(
        self,
        info: Info[ApiContext, None],
        dataset: str,
        type: str | None = None,
        cell_class: str | None = None,
        first: int = 100,
        after: str | None = None,
    ) -> NeuronConnection:
        await require_dataset(info, dataset)
        _check_page(first)
        params = {"dataset": dataset, "type": type, "cellClass": cell_class,
                  "after": _decode_cursor(after) if after else -1, "limit": first + 1}
        rows = await read(info.context.driver, cypher.NEURONS_PAGE, params)
        total = await read(info.context.driver, cypher.NEURONS_COUNT, params)
        nodes = [neuron_from_row(r["neuron"]) for r in rows[:first]]
        edges = [NeuronEdge(cursor=_encode_cursor(int(n.body_id)), node=n) for n in nodes]
        return NeuronConnection(
            edges=edges,
            page_info=PageInfo(has_next_page=len(rows) > first,
                               end_cursor=edges[-1].cursor if edges else None),
            total_count=int(total[0]["total"]),
        )


def _dataset_from_meta(meta: dict[str, Any]) -> Dataset:
    return Dataset(
        name=meta["dataset"], description=meta.get("description"), species=meta.get("species"),
        source=meta.get("source"), status=meta.get("status"),
        neuron_count=meta.get("neuronCount") or 0,
        chemical_connections=meta.get("chemicalConnections") or 0,
        chemical_synapses=meta.get("chemicalSynapses") or 0,
        electrical_connections=meta.get("electricalConnections") or 0,
        gap_junctions=meta.get("gapJunctions") or 0,
        synapse_count=meta.get("synapseCount") or 0,
        last_database_edit=meta.get("lastDatabaseEdit"),
    )


schema = strawberry.Schema(
    query=Query,
    extensions=[
        lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: MaskErrors(should_mask_error=should_mask),
    ],
    config=StrawberryConfig(scalar_map={BodyId: BODY_ID_SCALAR}),
)


def export_sdl() -> str:
    """The schema in SDL, as committed in `schema/schema.graphql`."""
    return print_schema(schema) + "\n"
