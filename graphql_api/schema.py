"""The GraphQL schema: `Query` assembled from the circuit, export and neuron fields, with the
limits every request runs under (depth, aliases, tokens) and error masking.

`schema/schema.graphql` is `export_sdl()` committed; a test keeps the two equal.
"""

from __future__ import annotations

import strawberry
from strawberry.extensions import MaskErrors, MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.printer import print_schema
from strawberry.schema.config import StrawberryConfig

from connectome_query.graphql_api.circuits import CircuitQuery
from connectome_query.graphql_api.errors import should_mask
from connectome_query.graphql_api.export_field import ExportQuery
from connectome_query.graphql_api.queries import NeuronQuery
from connectome_query.graphql_api.types import BODY_ID_SCALAR, BodyId

MAX_DEPTH = 10
MAX_ALIASES = 30
MAX_TOKENS = 2000


@strawberry.type
class Query(CircuitQuery, ExportQuery, NeuronQuery):
    pass


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
