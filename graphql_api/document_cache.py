"""Each distinct GraphQL query text parsed and validated once, not on every request.

Clients send the same few query texts again and again with other variables; parsing and
validating one took about a fifth of a small request's time. The answer of both depends only on
the text, the parser's options (the token limit) and the validation rules, so it is kept under
those (a bounded LRU). The rules must be the same classes from request to request for a hit:
`validation_rules` builds the depth and alias limits once. A text that does not parse is not
kept: Strawberry parses it again and reports the error as usual. Texts longer than
`MAX_CACHED_CHARS` are parsed every time, so the cache cannot be filled with large bodies.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from graphql import ASTValidationRule, DocumentNode, GraphQLError, GraphQLSchema, parse
from strawberry.extensions import MaxAliasesLimiter, QueryDepthLimiter, SchemaExtension
from strawberry.schema.schema import validate_document

MAX_CACHED_CHARS = 10_000
"""Longest query text kept (the product's own clients send a few hundred characters)."""
CACHE_SIZE = 256
"""Distinct (text, options, rules) kept, least recently used dropped first."""

Options = tuple[tuple[str, Any], ...]
Rules = tuple[type[ASTValidationRule], ...]


def validation_rules(max_depth: int, max_aliases: int) -> Rules:
    """The depth and alias limits as validation rules, built once so that every request
    validates with the same rule classes (and the cache can recognise them)."""
    return (*QueryDepthLimiter(max_depth=max_depth).validation_rules,
            *MaxAliasesLimiter(max_alias_count=max_aliases).validation_rules)


@lru_cache(maxsize=CACHE_SIZE)
def _parsed(query: str, options: Options) -> DocumentNode:
    return parse(query, **dict(options))


@lru_cache(maxsize=CACHE_SIZE)
def _validated(schema: GraphQLSchema, query: str, options: Options,
               rules: Rules) -> tuple[GraphQLError, ...]:
    return tuple(validate_document(schema, _parsed(query, options), rules))


class DocumentCache(SchemaExtension):
    """Parse and validation results by query text; list it after the extensions that set parse
    options or add validation rules."""

    def __init__(self, rules: Rules) -> None:
        super().__init__()
        self.rules = rules
        self.options: Options | None = None

    def on_operation(self) -> Iterator[None]:
        self.execution_context.validation_rules = (
            self.execution_context.validation_rules + self.rules)
        yield

    def on_parse(self) -> Iterator[None]:
        ctx = self.execution_context
        query = ctx.query
        if query and len(query) <= MAX_CACHED_CHARS and ctx.graphql_document is None:
            options = tuple(sorted(ctx.parse_options.items()))
            try:
                ctx.graphql_document = _parsed(query, options)
                self.options = options
            except (GraphQLError, TypeError):
                pass  # not kept: Strawberry's own parse reports it
        yield

    def on_validate(self) -> Iterator[None]:
        ctx = self.execution_context
        if self.options is not None and ctx.query and ctx.pre_execution_errors is None:
            schema: GraphQLSchema = getattr(ctx.schema, "_schema")  # noqa: B009
            ctx.pre_execution_errors = list(_validated(
                schema, ctx.query, self.options, tuple(ctx.validation_rules)))
        yield
