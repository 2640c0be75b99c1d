"""The neuron fields of `Query`: datasets, one dataset, a neuron by id or name, pages of neurons.

Partners are fields of `Neuron` itself (`types`), batched by the request's DataLoader.
"""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from connectome_query.graphql_api import cypher
from connectome_query.graphql_api.access import check_dataset, require_dataset
from connectome_query.graphql_api.auth import readable, require_read
from connectome_query.graphql_api.context import ApiContext
from connectome_query.graphql_api.errors import QueryError
from connectome_query.graphql_api.pagination import (
    check_page,
    decode_cursor,
    encode_cursor,
    keyset_page,
)
from connectome_query.graphql_api.types import (
    BodyId,
    Dataset,
    Neuron,
    NeuronConnection,
    NeuronEdge,
    dataset_from_meta,
    neuron_from_row,
)


@strawberry.type
class NeuronQuery:
    @strawberry.field(description="Datasets in the graph.")
    async def datasets(self, info: Info[ApiContext, None]) -> list[Dataset]:
        rows = await info.context.read(cypher.DATASETS, {"name": None})
        allowed = set(await readable(info, [r["meta"]["name"] for r in rows]))
        return [dataset_from_meta(r["meta"]) for r in rows if r["meta"]["name"] in allowed]

    @strawberry.field(description="One dataset by name.")
    async def dataset(self, info: Info[ApiContext, None], name: str) -> Dataset | None:
        check_dataset(name)
        await require_read(info, name)
        rows = await info.context.read(cypher.DATASETS, {"name": name})
        return dataset_from_meta(rows[0]["meta"]) if rows else None

    @strawberry.field(description="A neuron by bodyId or by name (instance); `version`: that "
                      "version of the dataset (default: the current one).")
    async def neuron(
        self,
        info: Info[ApiContext, None],
        dataset: str,
        body_id: BodyId | None = None,
        name: str | None = None,
        version: int | None = None,
    ) -> Neuron | None:
        dataset = await require_dataset(info, dataset, version)
        if (body_id is None) == (name is None):
            raise QueryError("give exactly one of bodyId or name")
        if body_id is not None:
            rows = await info.context.read(cypher.NEURON_BY_ID,
                                           {"dataset": dataset, "bodyId": int(body_id)})
        else:
            rows = await info.context.read(cypher.NEURONS_BY_NAME,
                                           {"dataset": dataset, "name": name})
            if len(rows) > 1:
                raise QueryError(f"name {name!r} matches several neurons; ask by bodyId")
        return neuron_from_row(rows[0]["neuron"]) if rows else None

    @strawberry.field(description="Neurons of a dataset, filtered by type or class, paged; "
                      "`version`: that version of the dataset (default: the current one).")
    async def neurons(
        self,
        info: Info[ApiContext, None],
        dataset: str,
        type: str | None = None,
        cell_class: str | None = None,
        first: int = 100,
        after: str | None = None,
        version: int | None = None,
    ) -> NeuronConnection:
        dataset = await require_dataset(info, dataset, version)
        check_page(first)
        start = decode_cursor(after or None, "bodyId", 1)
        params = {"dataset": dataset, "type": type, "cellClass": cell_class,
                  "after": start[0] if start else -1, "limit": first + 1}
        rows = await info.context.read(cypher.NEURONS_PAGE, params)
        total = await info.context.read(cypher.NEURONS_COUNT, params)
        nodes, page = keyset_page(rows, first, "bodyId", lambda r: neuron_from_row(r["neuron"]),
                                  lambda n: [int(n.body_id)])
        edges = [NeuronEdge(cursor=encode_cursor("bodyId", int(n.body_id)), node=n)
                 for n in nodes]
        return NeuronConnection(edges=edges, page_info=page, total_count=int(total[0]["total"]))
