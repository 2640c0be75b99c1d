"""Errors whose message is meant for the API's user; every other error is masked."""

from __future__ import annotations

from graphql import GraphQLError


class QueryError(Exception):
    """A problem with the request (unknown dataset, bad argument, timeout), shown as is."""


def is_user_error(error: GraphQLError) -> bool:
    """A problem with the request: graphql-core's syntax, validation and variable errors (a
    variable's value that does not fit its type is a GraphQLError wrapping the one that says
    why), or our own QueryError."""
    original = error.original_error
    while isinstance(original, GraphQLError):
        original = original.original_error
    return original is None or isinstance(original, QueryError)


def should_mask(error: GraphQLError) -> bool:
    """Mask everything except the user's errors (`is_user_error`): those carry no internals."""
    return not is_user_error(error)
