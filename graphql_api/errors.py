"""Errors whose message is meant for the API's user; every other error is masked. Each GraphQL
error carries a stable code in `extensions.code` (`error_code`)."""

from __future__ import annotations

from graphql import GraphQLError
from strawberry.extensions import MaskErrors


class QueryError(Exception):
    """A problem with the request (unknown dataset, bad argument, timeout), shown as is, with
    a stable `code` (the class's, or one given)."""

    code = "bad_request"

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


INVALID_QUERY = "invalid_query"
"""GraphQL that does not parse or validate (syntax, unknown field, a variable of the wrong
type, a depth, alias or token limit)."""
INTERNAL = "internal"
"""Our own failure; its message is masked."""


def error_code(error: GraphQLError) -> str:
    """The stable code of a GraphQL error: the QueryError's own, `INVALID_QUERY` for graphql's
    errors, `INTERNAL` for anything else."""
    original = error.original_error
    while isinstance(original, GraphQLError):
        original = original.original_error
    if original is None:
        return INVALID_QUERY
    return original.code if isinstance(original, QueryError) else INTERNAL


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


class CodedMaskErrors(MaskErrors):
    """`MaskErrors` (everything but the user's errors) that gives every error its code in
    `extensions.code`."""

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        masked = super().anonymise_error(error)
        masked.extensions = {"code": INTERNAL}
        return masked

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        processed = super()._process_errors(errors)
        for error in processed:
            if "code" not in (error.extensions or {}):
                error.extensions = {**(error.extensions or {}), "code": error_code(error)}
        return processed
