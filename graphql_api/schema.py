"""The GraphQL schema: `Query` assembled from the circuit, export and neuron fields, with the
limits every request runs under (depth, aliases, tokens, cost), error masking, and each query
text parsed and validated once (`document_cache`).

`schema/schema.graphql` is `export_sdl()` committed; a test keeps the two equal.
"""

from __future__ import annotations

import logging
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaxTokensLimiter
from strawberry.printer import print_schema
from strawberry.schema.config import StrawberryConfig
from strawberry.utils.logging import StrawberryLogger

from connectome_query.graphql_api.circuits import CircuitQuery
from connectome_query.graphql_api.compare_field import CompareQuery
from connectome_query.graphql_api.cost import QueryCostLimiter
from connectome_query.graphql_api.document_cache import DocumentCache, validation_rules
from connectome_query.graphql_api.errors import CodedMaskErrors, is_user_error, should_mask
from connectome_query.graphql_api.export_field import ExportQuery
from connectome_query.graphql_api.queries import NeuronQuery
from connectome_query.graphql_api.synapse_query import SynapseQuery
from connectome_query.graphql_api.types import BODY_ID_SCALAR, BodyId

MAX_DEPTH = 10
MAX_ALIASES = 30
MAX_TOKENS = 2000

LIMIT_RULES = validation_rules(MAX_DEPTH, MAX_ALIASES)
"""The depth and alias limits, checked in validation (built once: see `document_cache`)."""

log = logging.getLogger("connectome_query.api")


@strawberry.type
class Query(CircuitQuery, ExportQuery, NeuronQuery, CompareQuery, SynapseQuery):
    pass


class ApiSchema(strawberry.Schema):
    """The schema, logging a user's error (refused access, bad argument, limits) in one line and
    keeping tracebacks for the errors that are ours."""

    def process_errors(self, errors: list[GraphQLError],
                       execution_context: Any | None = None) -> None:
        for error in errors:
            if is_user_error(error):
                log.info("GraphQL request refused: %s", error.message)
            else:
                StrawberryLogger.error(error, execution_context)


schema = ApiSchema(
    query=Query,
    extensions=[
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: DocumentCache(LIMIT_RULES),
        QueryCostLimiter,
        lambda: CodedMaskErrors(should_mask_error=should_mask),
    ],
    config=StrawberryConfig(scalar_map={BodyId: BODY_ID_SCALAR}),
)


def export_sdl() -> str:
    """The schema in SDL, as committed in `schema/schema.graphql`."""
    return print_schema(schema) + "\n"
