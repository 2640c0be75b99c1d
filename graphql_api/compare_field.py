"""GraphQL `compareDatasets`: two datasets (or versions) side by side, thin over
`export.compare`. Each dataset may hold at most `ExportLimits.inline_edges` connections of the
compared type (CONNECTOME_EXPORT_INLINE_EDGES); larger comparisons are `connectome compare`'s.
"""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from connectome_query.export.compare import CompareRequest, compare, read_side_async
from connectome_query.export.request import ExportError, ExportLimits
from connectome_query.graphql_api.access import require_dataset
from connectome_query.graphql_api.context import ApiContext
from connectome_query.graphql_api.errors import QueryError
from connectome_query.graphql_api.export_field import MatrixSynapseType
from connectome_query.graphql_api.pagination import MAX_PAGE


@strawberry.type(description="One connection in either dataset, keyed by its matched ends.")
class ConnectionChange:
    pre: str
    post: str
    weight_a: int = strawberry.field(description="Weight in A (0: absent).")
    weight_b: int = strawberry.field(description="Weight in B (0: absent).")
    change: int = strawberry.field(description="weightB - weightA.")
    status: str = strawberry.field(description="both, onlyA or onlyB.")
    matched_ends: bool = strawberry.field(
        description="Both ends are neurons of both datasets.")


@strawberry.type(description="Summed weights between two cell types in A and in B.")
class TypeChange:
    pre_type: str
    post_type: str
    weight_a: int
    weight_b: int
    change: int


@strawberry.type(description="What changed from dataset A to dataset B.")
class DatasetComparison:
    a: str
    b: str
    neurons_a: int
    neurons_b: int
    matched_neurons: int
    only_a_neurons: list[str] = strawberry.field(description="Up to `first`, by name.")
    only_b_neurons: list[str] = strawberry.field(description="Up to `first`, by name.")
    connections_a: int
    connections_b: int
    in_both: int
    only_a: int
    only_b: int
    only_a_matched: int = strawberry.field(
        description="Connections only in A between neurons that are in both datasets.")
    only_b_matched: int
    stronger: int = strawberry.field(description="In both, heavier in B.")
    weaker: int
    correlation: float | None = strawberry.field(
        description="Pearson correlation of the weights of connections in both.")
    changes: list[ConnectionChange] = strawberry.field(
        description="The `first` largest changes by absolute value (ties by pre, post).")
    type_changes: list[TypeChange] = strawberry.field(
        description="The `first` largest per-type changes by absolute value.")


@strawberry.input(description="A neuron named `a` in dataset A is named `b` in B.")
class NameMapping:
    a: str
    b: str


@strawberry.type
class CompareQuery:
    @strawberry.field(description="Compare two datasets (or two versions of one): connections "
                      "present in one only, weight changes, weight correlation and per-type "
                      "sums. Neurons are matched by name, by cell name ignoring leading zeros "
                      "(match: \"cell\"), or by bodyId (match: \"bodyId\").")
    async def compare_datasets(
        self,
        info: Info[ApiContext, None],
        a: str,
        b: str,
        version_a: int | None = None,
        version_b: int | None = None,
        synapse_type: MatrixSynapseType = MatrixSynapseType.CHEMICAL,
        match: str = "name",
        mapping: list[NameMapping] | None = None,
        min_weight: int = 1,
        first: int = 50,
    ) -> DatasetComparison:
        if not 0 <= first <= MAX_PAGE:
            raise QueryError(f"first must be from 0 to {MAX_PAGE}")
        names = None if mapping is None else {m.a: m.b for m in mapping}
        if names is not None and len(names) != len(mapping or []):
            raise QueryError("mapping names a cell of A twice")
        try:
            req = CompareRequest(a=a, b=b, synapse_type=synapse_type.value, match=match,
                                 mapping=names, min_weight=min_weight).check()
        except ExportError as exc:
            raise QueryError(exc.message) from None
        key_a = await require_dataset(info, a, version_a)
        key_b = await require_dataset(info, b, version_b)
        limit = ExportLimits.from_env().inline_edges
        try:
            side_a = await read_side_async(info.context.read, key_a, a, req, limit)
            side_b = await read_side_async(info.context.read, key_b, b, req, limit)
            result = compare(side_a, side_b, req)
        except ExportError as exc:
            raise QueryError(exc.message) from None
        s = result.summary
        edges = result.edges
        top = edges.reindex(edges["change"].abs().sort_values(
            ascending=False, kind="stable").index).head(first)
        types = result.types.reindex(result.types["change"].abs().sort_values(
            ascending=False, kind="stable").index).head(first)
        corr = s["correlationShared"]
        return DatasetComparison(
            a=a, b=b, neurons_a=result.neurons_a, neurons_b=result.neurons_b,
            matched_neurons=len(result.matched), only_a_neurons=result.only_a_neurons[:first],
            only_b_neurons=result.only_b_neurons[:first], connections_a=s["connectionsA"],
            connections_b=s["connectionsB"], in_both=s["both"], only_a=s["onlyA"],
            only_b=s["onlyB"], only_a_matched=s["onlyAMatched"],
            only_b_matched=s["onlyBMatched"], stronger=s["stronger"], weaker=s["weaker"],
            correlation=corr,
            changes=[ConnectionChange(
                pre=str(r["pre"]), post=str(r["post"]), weight_a=int(r["weightA"]),
                weight_b=int(r["weightB"]), change=int(r["change"]), status=str(r["status"]),
                matched_ends=bool(r["matchedEnds"])) for r in top.to_dict("records")],
            type_changes=[TypeChange(
                pre_type=str(r["preType"]), post_type=str(r["postType"]),
                weight_a=int(r["weightA"]), weight_b=int(r["weightB"]),
                change=int(r["change"])) for r in types.to_dict("records")])
