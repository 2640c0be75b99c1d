"""The neuron fields of `Query`: datasets, one dataset, a neuron by id or name, pages of neurons.

Partners are fields of `Neuron` itself (`types`), batched by the request's DataLoader.
"""

from __future__ import annotations

import re

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

    @strawberry.field(description="Neurons of a dataset, paged, filtered by type, class, "
                      "status, at least minPre output / minPost input synapses, instance "
                      "(a regular expression matching the whole name) and a list of bodyIds "
                      "(every filter given must hold); `version`: that version of the dataset "
                      "(default: the current one).")
    async def neurons(
        self,
        info: Info[ApiContext, None],
        dataset: str,
        type: str | None = None,
        cell_class: str | None = None,
        first: int = 100,
        after: str | None = None,
        version: int | None = None,
        status: str | None = None,
        min_pre: int | None = None,
        min_post: int | None = None,
        instance_regex: str | None = None,
        body_ids: list[BodyId] | None = None,
    ) -> NeuronConnection:
        dataset = await require_dataset(info, dataset, version)
        check_page(first)
        start = decode_cursor(after or None, "bodyId", 1)
        if body_ids is not None and len(body_ids) > MAX_BODY_IDS:
            raise QueryError(f"bodyIds: at most {MAX_BODY_IDS:,} ids, got {len(body_ids):,}")
        params = {"dataset": dataset, "type": type, "cellClass": cell_class,
                  "status": status, "minPre": min_pre, "minPost": min_post,
                  "instanceRegex": checked_regex(instance_regex, "instanceRegex"),
                  "bodyIds": None if body_ids is None else [int(b) for b in body_ids],
                  "after": start[0] if start else -1, "limit": first + 1}
        rows = await info.context.read(cypher.NEURONS_PAGE, params)
        total = await info.context.read(cypher.NEURONS_COUNT, params)
        nodes, page = keyset_page(rows, first, "bodyId", lambda r: neuron_from_row(r["neuron"]),
                                  lambda n: [int(n.body_id)])
        edges = [NeuronEdge(cursor=encode_cursor("bodyId", int(n.body_id)), node=n)
                 for n in nodes]
        return NeuronConnection(edges=edges, page_info=page, total_count=int(total[0]["total"]))


MAX_BODY_IDS = 100_000
MAX_REGEX = 500


def checked_regex(pattern: str | None, name: str) -> str | None:
    """`pattern` if it is a regular expression Neo4j can read (checked here, where the error
    can name the argument), else QueryError."""
    if pattern is None:
        return None
    if len(pattern) > MAX_REGEX:
        raise QueryError(f"{name}: at most {MAX_REGEX} characters")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise QueryError(f"{name} is not a regular expression: {exc}") from None
    return pattern
