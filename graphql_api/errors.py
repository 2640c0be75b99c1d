"""Errors whose message is meant for the API's user; every other error is masked."""

from __future__ import annotations

from graphql import GraphQLError


class QueryError(Exception):
    """A problem with the request (unknown dataset, bad argument, timeout), shown as is."""


def should_mask(error: GraphQLError) -> bool:
    """Mask everything except our own user-facing errors and GraphQL validation errors."""
    original = error.original_error
    if original is None:
        return False  # syntax/validation errors from graphql-core carry no internals
    return not isinstance(original, QueryError)
