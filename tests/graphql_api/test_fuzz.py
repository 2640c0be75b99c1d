"""Fuzzing the HTTP API: schema-driven GraphQL (hypothesis-graphql), raw bodies, Cypher bodies.

Property: no 5xx, no hang (each answer within HANG_S), and no internals in any answer.
"""

from __future__ import annotations

import re
import time

import graphql
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema

from connectome_query.graphql_api.schema import export_sdl
from tests.support.graphql import PUBLIC, GraphQLClient

pytestmark = pytest.mark.neo4j

HANG_S = 20.0
LEAKY = re.compile(r"Traceback|File \"|bolt://|Neo\.ClientError|\.py\"", re.IGNORECASE)
FIGURES = {"requests": 0, "5xx": 0, "slowest_s": 0.0}
FUZZ: dict = {"deadline": None, "suppress_health_check": [HealthCheck.function_scoped_fixture,
                                                          HealthCheck.too_slow]}

BODY_IDS = st.one_of(
    st.integers(-(2**70), 2**70).map(lambda v: graphql.IntValueNode(value=str(v))),
    st.text(max_size=30).map(lambda v: graphql.StringValueNode(value=v)),
)
SCALARS = {"BodyId": BODY_IDS}


def _check(api: GraphQLClient, body: object, raw: bytes | None = None,
           path: str = "/graphql") -> int:
    t0 = time.monotonic()
    if raw is not None:
        response = api.http.post(path, content=raw,
                                 headers={"content-type": "application/json"})
    else:
        response = api.http.post(path, json=body)
    elapsed = time.monotonic() - t0
    FIGURES["requests"] += 1
    FIGURES["slowest_s"] = max(FIGURES["slowest_s"], elapsed)
    if response.status_code >= 500:
        FIGURES["5xx"] += 1
    assert response.status_code < 500, (body, raw, response.text[:500])
    assert elapsed < HANG_S, (body, elapsed)
    assert not LEAKY.search(response.text), response.text[:500]
    return response.status_code


SDL = export_sdl()


@settings(max_examples=150, **FUZZ)
@given(query=from_schema(SDL, custom_scalars=SCALARS, mode=Mode.POSITIVE))
def test_valid_queries_never_500(secure_api: GraphQLClient, query: str) -> None:
    _check(secure_api, {"query": query})


@settings(max_examples=100, **FUZZ)
@given(query=from_schema(SDL, custom_scalars=SCALARS, mode=Mode.NEGATIVE))
def test_invalid_queries_never_500(secure_api: GraphQLClient, query: str) -> None:
    _check(secure_api, {"query": query})


@settings(max_examples=60, **FUZZ)
@given(query=from_schema(SDL, fields=["neuron", "neurons"], custom_scalars=SCALARS,
                         mode=Mode.POSITIVE, allow_null=False))
def test_queries_on_a_real_dataset(secure_api: GraphQLClient, query: str) -> None:
    """The same, with every `dataset: "..."` argument pointed at a dataset that exists."""
    real = re.sub(r'dataset: "(?:[^"\\]|\\.)*"', f'dataset: "{PUBLIC}"', query)
    _check(secure_api, {"query": real})


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=4),
    max_leaves=12,
)


@settings(max_examples=120, **FUZZ)
@given(body=st.one_of(
    JSON,
    st.fixed_dictionaries({"query": st.text(max_size=200)},
                          optional={"variables": JSON, "operationName": JSON}),
    st.fixed_dictionaries({"query": st.just("query($d: String!, $id: BodyId!) { neuron("
                                            "dataset: $d, bodyId: $id) { bodyId } }"),
                           "variables": st.fixed_dictionaries({"d": JSON, "id": JSON})}),
))
def test_arbitrary_json_bodies_never_500(secure_api: GraphQLClient, body: object) -> None:
    _check(secure_api, body)


@settings(max_examples=60, **FUZZ)
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes_never_500(secure_api: GraphQLClient, raw: bytes) -> None:
    _check(secure_api, None, raw=raw)
    _check(secure_api, None, raw=raw, path="/api/custom/custom")


@settings(max_examples=60, **FUZZ)
@given(body=st.one_of(JSON, st.fixed_dictionaries(
    {"cypher": st.one_of(st.text(max_size=120), JSON)}, optional={"dataset": JSON})))
def test_cypher_endpoint_bodies_never_500(open_api: GraphQLClient, body: object) -> None:
    _check(open_api, body, path="/api/custom/custom")


def test_zz_report() -> None:
    print(f"\nGraphQL/HTTP fuzz: requests={FIGURES['requests']} 5xx={FIGURES['5xx']} "
          f"slowest={FIGURES['slowest_s']:.2f}s")
    assert FIGURES["5xx"] == 0
