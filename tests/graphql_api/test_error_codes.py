"""Every GraphQL error carries a stable code in `extensions.code`, whatever raised it."""

from __future__ import annotations

import pytest

from connectome_query.graphql_api import access
from tests.support.graphql import GraphQLClient

pytestmark = pytest.mark.neo4j


def _code(gql: GraphQLClient, query: str, **variables: object) -> tuple[str, str]:
    body = gql(query, **variables)
    error = body["errors"][0]
    return error["extensions"]["code"], error["message"]


@pytest.mark.parametrize(("query", "code", "said"), [
    ('{ cellTypes(dataset: "nope") { type } }', "unknown_dataset", "nope"),
    ('{ cellTypes(dataset: "cook2019", version: 99) { type } }', "unknown_dataset",
     "no complete version 99"),
    ('{ cellTypes(dataset: "no such") { type } }', "invalid_dataset", "invalid dataset name"),
    ('{ neurons(dataset: "cook2019", first: -1) { edges { node { bodyId } } } }',
     "bad_request", "first"),
    ("{ cellTypes(dataset: ", "invalid_query", "Syntax Error"),
    ('{ cellTypes(dataset: "cook2019") { nope } }', "invalid_query", "nope"),
])
def test_errors_carry_their_code(gql: GraphQLClient, query: str, code: str, said: str) -> None:
    got, message = _code(gql, query)
    assert got == code and said in message, message


def test_our_own_failure_is_masked_with_a_code(gql: GraphQLClient,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(name: str) -> str:
        raise RuntimeError("internal detail")

    monkeypatch.setattr(access, "check_dataset", broken)
    code, message = _code(gql, '{ cellTypes(dataset: "cook2019") { type } }')
    assert code == "internal" and "internal detail" not in message
