"""What a GraphQL query may cost: the field values its answer can hold, refused before it runs.

Every selected field counts once per object it is asked on; a list field's objects multiply: its
page size (`first`, or the argument of an enclosing field that sizes it, `LIST_SIZES`) times
the objects around it. So `neurons(first: 100) { edges { node { upstream(first: 1000) {
weight } } } }` costs about 100 x 1000 x 2. Sizes above what the field accepts are counted at
that maximum (the field itself refuses them with its own message). Introspection is not counted:
it is bounded by the schema. The limit is `CONNECTOME_GRAPHQL_MAX_COST`; it also bounds how
long one answer keeps the event loop busy, since GraphQL completes fields there.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
    get_nullable_type,
    get_operation_ast,
    is_list_type,
)
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values
from strawberry.extensions import SchemaExtension

from connectome_query.export.request import ExportLimits
from connectome_query.graphdb.settings import ApiSettings, from_env
from connectome_query.graphql_api.circuit_cypher import MAX_MOTIF_EDGES, MAX_MOTIF_NODES
from connectome_query.graphql_api.circuits import MAX_SYNAPSES_PER_CONTACT
from connectome_query.graphql_api.errors import QueryError
from connectome_query.graphql_api.pagination import MAX_PAGE

LIST_SIZES: dict[str, str | int] = {
    "NeuronConnection.edges": "first",
    "ChandelierPage.cells": "first",
    "ContactPage.contacts": "first",
    "Contact.synapses": "synapsesPerContact",
    "PathResult.paths": "first",
    "Path.neurons": "maxLength",
    "Path.weights": "maxLength",
    "ReciprocalPage.pairs": "first",
    "MotifPage.matches": "first",
    "MotifMatch.nodes": MAX_MOTIF_NODES,
    "MotifMatch.edges": MAX_MOTIF_EDGES,
    "PartnerTypeGroup.partners": "partnersPerType",
    "Query.datasets": 100,
    "Query.synapsesPerConnection": 100,
    "Query.cellTypes": MAX_PAGE,
    "Query.partnersByType": 10,
    "NeuroglancerLink.segments": MAX_PAGE,
    "ConnectivityMatrix.labels": ExportLimits.inline_neurons,
    "ConnectivityMatrix.entries": ExportLimits.inline_edges,
    "DatasetComparison.onlyANeurons": "first",
    "DatasetComparison.onlyBNeurons": "first",
    "DatasetComparison.changes": "first",
    "DatasetComparison.typeChanges": "first",
}
"""List fields without a size argument of their own, and what sizes them: the argument of the
nearest enclosing field with that name, or an estimate: datasets and histogram bins, a hundred;
cell types, a page; a neuron's partner types, ten (its partners in all groups together are at
most its partners); an inline matrix, its default inline limits."""

UNSIZED = MAX_PAGE
"""Items counted for a list field missing from `LIST_SIZES` (a test keeps the table whole)."""

MAX_SIZE = {"Query.typeConnectivity": 100_000, "Contact.synapses": MAX_SYNAPSES_PER_CONTACT}
"""Largest size a field accepts where it is not `MAX_PAGE`."""


@dataclass(frozen=True)
class _Walk:
    schema: GraphQLSchema
    fragments: Mapping[str, FragmentDefinitionNode]
    variables: VariableValues


def _fields(walk: _Walk, selections: SelectionSetNode | None,
            parent: GraphQLObjectType) -> Iterator[tuple[FieldNode, GraphQLField]]:
    """The fields a selection set asks for, fragments spread (each fragment's fields on the
    types they name; validation has checked they fit)."""
    for node in selections.selections if selections else ():
        if isinstance(node, FieldNode):
            if node.name.value.startswith("__"):
                continue
            field = parent.fields.get(node.name.value)
            if field is not None:
                yield node, field
        else:
            fragment: FragmentDefinitionNode | InlineFragmentNode | None = (
                walk.fragments.get(node.name.value) if isinstance(node, FragmentSpreadNode)
                else node if isinstance(node, InlineFragmentNode) else None)
            if fragment is None:
                continue
            condition = fragment.type_condition
            target = walk.schema.get_type(condition.name.value) if condition else parent
            selection = fragment.selection_set
            if isinstance(target, GraphQLObjectType):
                yield from _fields(walk, selection, target)


def _size(key: str, args: Mapping[str, Any], scope: Mapping[str, Any]) -> int:
    """How many items the list field `key` (`Type.field`) may hold."""
    bound = LIST_SIZES.get(key, "first" if "first" in args else None)
    if isinstance(bound, int):
        return bound
    value = None if bound is None else args[bound] if bound in args else scope.get(bound)
    if not isinstance(value, int) or isinstance(value, bool):
        return UNSIZED
    return max(0, min(value, MAX_SIZE.get(key, MAX_PAGE)))


def _cost(walk: _Walk, selections: SelectionSetNode | None, parent: GraphQLObjectType,
          objects: int, scope: Mapping[str, Any]) -> int:
    total = 0
    for node, field in _fields(walk, selections, parent):
        args = get_argument_values(field, node, walk.variables)
        key = f"{parent.name}.{node.name.value}"
        count = objects * (_size(key, args, scope) if is_list_type(
            get_nullable_type(field.type)) else 1)
        total += count
        child = get_named_type(field.type)
        if isinstance(child, GraphQLObjectType) and node.selection_set and count:
            total += _cost(walk, node.selection_set, child, count, {**scope, **args})
    return total


def query_cost(schema: GraphQLSchema, document: DocumentNode,
               variables: Mapping[str, Any] | None, operation_name: str | None) -> int | None:
    """The cost of the operation to run, or None when it cannot run anyway (no such operation,
    bad variables: execution reports those)."""
    operation = get_operation_ast(document, operation_name)
    if not isinstance(operation, OperationDefinitionNode):
        return None
    root = schema.get_root_type(operation.operation)
    if root is None:
        return None
    coerced = get_variable_values(schema, operation.variable_definitions or (),
                                  dict(variables or {}))
    if isinstance(coerced, list):
        return None
    fragments = {d.name.value: d for d in document.definitions
                 if isinstance(d, FragmentDefinitionNode)}
    return _cost(_Walk(schema, fragments, coerced), operation.selection_set, root, 1, {})


class QueryCostLimiter(SchemaExtension):
    """Refuses, before execution, an operation whose cost is over `CONNECTOME_GRAPHQL_MAX_COST`
    with a `QueryError` naming the limit."""

    def on_execute(self) -> Iterator[None]:
        ctx = self.execution_context
        if ctx.graphql_document is not None:
            limit = from_env(ApiSettings).graphql_max_cost
            schema: GraphQLSchema = getattr(ctx.schema, "_schema")  # noqa: B009
            cost = query_cost(schema, ctx.graphql_document, ctx.variables, ctx.operation_name)
            if cost is not None and cost > limit:
                raise QueryError(
                    f"query cost {cost:,} is over the limit of {limit:,} "
                    "(CONNECTOME_GRAPHQL_MAX_COST): every field counts once per object it is "
                    "asked on, and a list's page size multiplies what is inside it; ask for "
                    "smaller pages, fewer nested lists, or page through the answer",
                    code="too_costly")
        yield
