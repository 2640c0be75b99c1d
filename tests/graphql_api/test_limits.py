"""Query depth, aliases, tokens, page sizes, timeouts, body size and the rate limit."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import neo4j
import pytest
from fastapi.testclient import TestClient

from connectome_query.graphdb.settings import Neo4jTarget
from connectome_query.graphql_api import document_cache
from connectome_query.graphql_api.app import create_app
from connectome_query.graphql_api.auth import AuthConfig, TokenStore
from connectome_query.graphql_api.db import read
from connectome_query.graphql_api.errors import QueryError
from connectome_query.graphql_api.guard import MAX_BODY_BYTES
from connectome_query.graphql_api.pagination import MAX_PAGE
from connectome_query.graphql_api.ratelimit import TokenBucketLimiter
from connectome_query.graphql_api.schema import MAX_ALIASES, MAX_DEPTH, MAX_TOKENS
from tests.support.graphql import PUBLIC, GraphQLClient

pytestmark = pytest.mark.neo4j


def _nested(levels: int) -> str:
    """A neuron query nested `levels` partner hops deep."""
    inner = "bodyId"
    for _ in range(levels):
        inner = f"upstream(first: 1) {{ partner {{ {inner} }} }}"
    return f'{{ neuron(dataset: "{PUBLIC}", bodyId: "1") {{ {inner} }} }}'


def _errors(api: GraphQLClient, query: str) -> list[str]:
    body = api.gql(query)
    return [e["message"] for e in body.get("errors", [])]


def test_depth_limit(secure_api: GraphQLClient) -> None:
    ok_levels = (MAX_DEPTH - 2) // 2
    assert not any("depth" in m for m in _errors(secure_api, _nested(ok_levels)))
    deep = _errors(secure_api, _nested(MAX_DEPTH))
    assert any("exceeds maximum operation depth" in m for m in deep), deep


def test_alias_limit(secure_api: GraphQLClient) -> None:
    ok = " ".join(f"a{i}: datasets {{ name }}" for i in range(MAX_ALIASES))
    assert secure_api.gql(f"{{ {ok} }}").get("errors") is None
    many = " ".join(f"a{i}: datasets {{ name }}" for i in range(MAX_ALIASES + 1))
    assert any("aliases" in m for m in _errors(secure_api, f"{{ {many} }}"))


def test_limits_hold_for_a_query_text_seen_before(secure_api: GraphQLClient) -> None:
    """Parse and validation results are kept per query text: asking again gives the same
    refusal, and an accepted text asked again (with other variables) is served from the cache
    and answers for those variables."""
    deep = _nested(MAX_DEPTH)
    first, again = _errors(secure_api, deep), _errors(secure_api, deep)
    assert first == again and any("exceeds maximum operation depth" in m for m in again)
    many = " ".join(f"a{i}: datasets {{ name }}" for i in range(MAX_ALIASES + 1))
    assert _errors(secure_api, f"{{ {many} }}") == _errors(secure_api, f"{{ {many} }}") != []
    q = 'query($f: Int!) { neurons(dataset: "%s", first: $f) { edges { node { bodyId } } } }'
    hits = document_cache._validated.cache_info().hits
    sizes = [len(secure_api.data(q % PUBLIC, f=f)["neurons"]["edges"]) for f in (1, 2, 3)]
    assert sizes == [1, 2, 3]
    assert document_cache._validated.cache_info().hits >= hits + 2
    assert "first must be between" in secure_api.gql(q % PUBLIC, f=0)["errors"][0]["message"]


def test_token_limit(secure_api: GraphQLClient) -> None:
    fields = " ".join(["name"] * MAX_TOKENS)
    for _ in range(2):  # a text over the limit is never kept
        errors = _errors(secure_api, f"{{ datasets {{ {fields} }} }}")
        assert any("token" in m.lower() for m in errors), errors


@pytest.mark.parametrize("first", [0, -1, MAX_PAGE + 1, 2**31 - 1])
def test_page_size_limit(secure_api: GraphQLClient, first: int) -> None:
    q = f'query($f: Int!) {{ neurons(dataset: "{PUBLIC}", first: $f) {{ totalCount }} }}'
    body = secure_api.gql(q, f=first)
    assert body["errors"][0]["message"] == f"first must be between 1 and {MAX_PAGE}, got {first}"
    nested = secure_api.gql(
        f'query($f: Int!) {{ neurons(dataset: "{PUBLIC}", first: 1) {{ edges {{ node {{ '
        f"upstream(first: $f) {{ weight }} }} }} }} }}", f=first)
    assert "first must be between" in nested["errors"][0]["message"]


def test_query_timeout_is_a_clear_error(neo4j_target: Neo4jTarget) -> None:
    async def go() -> str:
        async with neo4j.AsyncGraphDatabase.driver(
                neo4j_target.uri, auth=(neo4j_target.user, neo4j_target.password)) as drv:
            try:
                await read(drv, "UNWIND range(1, 400000000) AS x WITH x WHERE x % 7 = 99999999 "
                           "RETURN count(x) AS n", {}, timeout=1.0)
            except QueryError as exc:
                return str(exc)
        return ""

    message = asyncio.run(go())
    assert "longer than its 1 s limit" in message


def test_oversized_body_is_refused(secure_api: GraphQLClient) -> None:
    padding = b" " * (MAX_BODY_BYTES + 10)
    response = secure_api.http.post(
        "/graphql", content=b'{"query": "' + padding + b'{ datasets { name } }"}',
        headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_token_bucket_refills_at_rate() -> None:
    now = [0.0]
    bucket = TokenBucketLimiter(rate=2.0, burst=3, clock=lambda: now[0])
    assert [bucket.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.acquire("a") == pytest.approx(0.5)
    assert bucket.acquire("b") == 0.0  # keys are independent
    now[0] += 0.5
    assert bucket.acquire("a") == 0.0
    assert bucket.acquire("a") > 0
    now[0] += 100.0  # never more than the burst
    assert [bucket.acquire("a") for _ in range(4)].count(0.0) == 3


@pytest.fixture()
def limited(neo4j_target: Neo4jTarget, sec_data: dict,
            tokens_file: Path) -> Iterator[GraphQLClient]:
    app = create_app(neo4j_target, auth=AuthConfig(required=True, tokens_file=tokens_file,
                                                    rate=0.5, burst=3))
    with TestClient(app) as client:
        yield GraphQLClient(client)


def test_rate_limit_per_token(limited: GraphQLClient, store: TokenStore) -> None:
    _, one = store.create("rl-1", [PUBLIC])
    _, two = store.create("rl-2", [PUBLIC])
    query = "{ datasets { name } }"
    codes = [limited.post(query, one).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    refused = limited.post(query, one)
    assert int(refused.headers["Retry-After"]) >= 1
    assert "rate limit exceeded" in refused.json()["errors"][0]["message"]
    assert limited.post(query, two).status_code == 200  # another token has its own bucket
    anonymous = [limited.post(query).status_code for _ in range(4)]
    assert anonymous == [200, 200, 200, 429]  # anonymous callers share a per-address bucket
