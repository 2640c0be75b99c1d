"""Hostile and careless requests against every route: each gets a clear 4xx naming the problem
(the parameter, the limit and its setting), one log line, and leaves the database as it was.

Classes: bodies too large (declared, chunked, before auth), JSON that does not parse or nests
too deeply, GraphQL queries over the cost limit or answers over the byte limit, values out of
range, the rate limit and concurrency caps on the heavy routes, user errors that must not read
as internal ones. The Cypher endpoint's own deny-list is in test_cypher_policy and
test_cypher_fuzz.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import neo4j
import pytest
from fastapi.testclient import TestClient

from connectome_query.graphdb.settings import Neo4jTarget
from connectome_query.graphql_api.app import create_app
from connectome_query.graphql_api.auth import AuthConfig, AuthState, TokenStore
from connectome_query.graphql_api.guard import MAX_BODY_BYTES, Bounds, Guard
from tests.support.adversary import db_fingerprint
from tests.support.graphql import PUBLIC, GraphQLClient
from tests.support.load import served_api

pytestmark = pytest.mark.neo4j

ROUTES = ("/graphql", "/api/custom/custom", "/export/matrix")
DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.fixture(autouse=True)
def unchanged(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test here leaves the database exactly as it found it."""
    if "driver" not in request.fixturenames:
        yield
        return
    driver = request.getfixturevalue("driver")
    before = db_fingerprint(driver)
    yield
    assert db_fingerprint(driver) == before


def _message(response: Any) -> str:
    body = response.json()
    return str(body["detail"] if "detail" in body else body["errors"][0]["message"])


# -- bodies ------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ROUTES)
def test_declared_oversized_body_is_413_before_auth(secure_api: GraphQLClient, path: str,
                                                    driver: neo4j.Driver) -> None:
    response = secure_api.http.post(path, content=b"x" * (MAX_BODY_BYTES + 1),
                                    headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert "CONNECTOME_MAX_BODY_BYTES" in _message(response)


def _guard(app: Any, *, required: bool = False, max_concurrent: int = 16,
           max_heavy: int = 4) -> Guard:
    state = AuthState.build(AuthConfig(required=required, tokens_file=Path("/nonexistent")))
    return Guard(app, state, Bounds(max_body=1000, graphql_max_bytes=10_000),
                 max_concurrent=max_concurrent, max_heavy=max_heavy)


def _scope(path: str, headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": path, "query_string": b"",
            "headers": headers or [], "client": ("127.0.0.1", 1)}


def test_chunked_body_is_counted_as_it_arrives() -> None:
    """No Content-Length: the guard stops reading past the limit and answers 413, before the
    app or authentication ever run (a bad token would have been a 401)."""
    pulled: list[int] = []
    sent: list[dict[str, Any]] = []
    ran: list[str] = []

    async def receive() -> dict[str, Any]:
        pulled.append(1)
        return {"type": "http.request", "body": b"x" * 300, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        ran.append("app")

    guard = _guard(app, required=True)
    asyncio.run(guard(_scope("/graphql", [(b"authorization", b"Bearer nonsense")]),
                      receive, send))
    assert sent[0]["status"] == 413 and not ran
    assert len(pulled) == 4  # 1,200 bytes > 1,000: the rest of the stream is never read
    assert b"CONNECTOME_MAX_BODY_BYTES" in sent[1]["body"]


def test_chunked_400mb_post_to_a_real_server(neo4j_target: Neo4jTarget) -> None:
    """Over a socket, as a client would, with auth on and no token: the server answers 413
    after about the limit, and its memory does not grow with what the client keeps sending."""
    with served_api(neo4j_target, env={"CONNECTOME_AUTH": "required"}) as api:
        before = api.rss_mb()
        host, port = api.url.removeprefix("http://").split(":")
        chunk = b"%x\r\n" % (1 << 16) + b"x" * (1 << 16) + b"\r\n"
        sent, answer, deadline = 0, b"", time.monotonic() + 60
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: "
                         b"application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
            sock.settimeout(0.05)
            while not answer and sent < 400 << 20 and time.monotonic() < deadline:
                try:
                    sock.sendall(chunk)
                    sent += 1 << 16
                except TimeoutError:
                    pass
                except (BrokenPipeError, ConnectionResetError):
                    break
                try:
                    answer = sock.recv(4096)
                except TimeoutError:
                    continue
            sock.settimeout(10)
            answer = answer or sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert sent < 64 << 20, sent
        assert api.rss_mb() - before < 64


@pytest.mark.parametrize("path", ROUTES)
def test_deep_or_broken_json_is_400(open_api: GraphQLClient, path: str,
                                    driver: neo4j.Driver) -> None:
    for body, words in ((DEEP, "nested too deeply"), (b'{"query": ', "not valid JSON"),
                        (b"\xff\xfe{}", "not valid JSON")):
        response = open_api.http.post(path, content=body,
                                      headers={"content-type": "application/json"})
        assert response.status_code == 400, (path, response.text)
        assert words in _message(response)


def test_deep_variables_in_a_get_are_400(open_api: GraphQLClient) -> None:
    response = open_api.http.get("/graphql", params={
        "query": "{ datasets { name } }", "variables": "[" * 5_000 + "]" * 5_000})
    assert response.status_code == 400
    assert "variables" in _message(response) and "nested too deeply" in _message(response)


# -- GraphQL cost and answer size --------------------------------------------------------------
NESTED = """query($f: Int!) {{ neuron(dataset: "{d}", name: "AVAL") {{ upstream(first: $f) {{
  partner {{ upstream(first: $f) {{ partner {{ upstream(first: $f) {{ weight }} }} }} }} }} }} }}"""


def test_query_cost_is_limited_with_a_clear_error(gql: GraphQLClient,
                                                  driver: neo4j.Driver) -> None:
    refused = gql(NESTED.format(d="cook2019"), f=1000)
    assert refused["data"] is None
    message = refused["errors"][0]["message"]
    assert "CONNECTOME_GRAPHQL_MAX_COST" in message and "over the limit of 50,000" in message
    assert gql.data(NESTED.format(d="cook2019"), f=3)["neuron"]["upstream"]
    aliases = " ".join(f'a{i}: neurons(dataset: "cook2019", first: 1000) {{ edges {{ node '
                       f"{{ bodyId }} }} }}" for i in range(20))
    assert "CONNECTOME_GRAPHQL_MAX_COST" in gql(f"{{ {aliases} }}")["errors"][0]["message"]
    fragment = """{ neurons(dataset: "cook2019", first: 1000) { ...E } }
        fragment E on NeuronConnection { edges { node { downstream(first: 100) { weight } } } }"""
    assert "CONNECTOME_GRAPHQL_MAX_COST" in gql(fragment)["errors"][0]["message"]


def test_answers_over_the_byte_limit_are_413(neo4j_target: Neo4jTarget, celegans: dict,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONNECTOME_GRAPHQL_MAX_BYTES", "2000")
    with TestClient(create_app(neo4j_target, auth=AuthConfig(required=False))) as client:
        small = client.post("/graphql", json={"query": "{ datasets { name } }"})
        assert small.status_code == 200 and small.json()["data"]["datasets"]
        big = client.post("/graphql", json={"query": '{ neurons(dataset: "cook2019", '
                                            "first: 500) { edges { node { instance } } } }"})
    assert big.status_code == 413
    assert "CONNECTOME_GRAPHQL_MAX_BYTES" in _message(big)


# -- values out of range -----------------------------------------------------------------------
@pytest.mark.parametrize(("params", "words"), [
    ({"minWeight": "1e23"}, "minWeight"),
    ({"minWeight": str(10**23)}, "minWeight must be below 2^63"),
    ({"minWeight": str(2**63)}, "minWeight must be below 2^63"),
    ({"bodyIds": str(2**64)}, "bodyIds must be between"),
    ({"neurons": "perhaps"}, "neurons"),
])
def test_export_values_out_of_range_are_400(open_api: GraphQLClient, params: dict[str, str],
                                            words: str, driver: neo4j.Driver) -> None:
    response = open_api.http.get("/export/matrix", params={"dataset": PUBLIC, **params})
    assert response.status_code == 400, response.text
    assert words in _message(response)
    post = open_api.http.post("/export/matrix", json={"dataset": PUBLIC, "minWeight": 1e23})
    assert post.status_code == 400 and "minWeight" in _message(post)


@pytest.mark.parametrize(("query", "words"), [
    ('{ neuron(dataset: "cook2019", bodyId: "99999999999999999999999") { bodyId } }',
     "out of range"),
    ('{ neurons(dataset: "cook2019", first: 99999999999) { totalCount } }', "32-bit"),
    ('{ neurons(dataset: "cook2019", after: "\\u0000") { totalCount } }', "invalid cursor"),
    ('{ neuron(dataset: "cook\\u00002019", name: "AVAL") { bodyId } }', "invalid dataset"),
    ('{ neuron(dataset: "cook2019", name: "AVAL") { upstream(minWeight: 2147483647) '
     "{ weight } } }", ""),
    ('{ a" }', "Syntax Error"),
    ("{" * 600 + "}" * 600, "Syntax Error"),
    ("{ a" + " { a" * 900 + " }" * 901, "nested too deeply"),
])
def test_graphql_user_errors_say_what_is_wrong(gql: GraphQLClient, query: str,
                                               words: str) -> None:
    body = gql(query)
    messages = [e["message"] for e in body.get("errors", [])]
    assert "Unexpected error." not in messages, messages
    assert all(words in m for m in messages), messages


PAGE = 'query($f: Int!) { neurons(dataset: "cook2019", first: $f) { totalCount } }'
BODY = 'query($b: BodyId!) { neuron(dataset: "cook2019", bodyId: $b) { bodyId } }'


@pytest.mark.parametrize(("query", "variables", "words"), [
    (PAGE, {"f": "abc"}, "Variable '$f' has invalid value: Int cannot represent"),
    (PAGE, {}, "Variable '$f' has invalid value: Expected a value of non-null type"),
    (PAGE, {"f": 2**40}, "Variable '$f'"),
    (BODY, {"b": "12x"}, "not a body id"),
    (BODY, {"b": str(2**64)}, "out of range"),
])
def test_graphql_variable_errors_name_the_variable(gql: GraphQLClient, query: str,
                                                   variables: dict[str, Any], words: str,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    body = gql(query, **variables)
    messages = [e["message"] for e in body.get("errors", [])]
    assert body["data"] is None and messages, body
    assert all(words in m for m in messages), messages
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize(("body", "words"), [
    ({"cypher": "RETURN 1 / 0"}, "/ by zero"),
    ({"cypher": "RETURN $missing"}, "missing"),
    ({"cypher": "RETURN 1", "dataset": 5}, "invalid dataset name"),
    ({"cypher": ["RETURN 1"]}, "non-empty string"),
    ({"cypher": "RETURN 9223372036854775807 + 1"}, "overflow"),
])
def test_cypher_user_errors_say_what_is_wrong(open_api: GraphQLClient, body: dict[str, Any],
                                              words: str, driver: neo4j.Driver) -> None:
    response = open_api.http.post("/api/custom/custom", json=body)
    assert response.status_code == 400
    assert words in _message(response).lower() or words in _message(response)


# -- rate and concurrency on the heavy routes ----------------------------------------------------
def test_rate_limit_covers_export_and_cypher(neo4j_target: Neo4jTarget, sec_data: dict,
                                             tokens_file: Path, store: TokenStore,
                                             driver: neo4j.Driver) -> None:
    _, admin = store.create("rate-heavy", ["*"])
    headers = {"Authorization": f"Bearer {admin}"}
    app = create_app(neo4j_target, auth=AuthConfig(required=True, tokens_file=tokens_file,
                                                    rate=0.2, burst=2))
    with TestClient(app) as client:
        codes = [client.post("/api/custom/custom", json={"cypher": "RETURN 1"},
                             headers=headers).status_code,
                 client.get("/export/matrix", params={"dataset": PUBLIC, "format": "csv"},
                            headers=headers).status_code,
                 client.get("/export/neurons", params={"dataset": PUBLIC, "format": "csv"},
                            headers=headers)]
    assert codes[:2] == [200, 200]
    assert codes[2].status_code == 429 and "rate limit" in _message(codes[2])
    assert int(codes[2].headers["Retry-After"]) >= 1


def test_heavy_routes_cannot_take_every_slot() -> None:
    """Five Cypher requests and five GraphQL ones at once, three slots, one heavy: never more
    than one heavy request runs, and GraphQL is served while heavy ones wait."""
    running: dict[str, int] = {"heavy": 0, "all": 0}
    peaks: dict[str, int] = {"heavy": 0, "all": 0}
    finished: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        kind = "heavy" if scope["path"].startswith("/api/") else "light"
        running["all"] += 1
        running["heavy"] += kind == "heavy"
        peaks["all"] = max(peaks["all"], running["all"])
        peaks["heavy"] = max(peaks["heavy"], running["heavy"])
        await asyncio.sleep(0.05)
        running["all"] -= 1
        running["heavy"] -= kind == "heavy"
        finished.append(kind)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def go() -> None:
        guard = _guard(app, max_concurrent=3, max_heavy=1)

        async def one(path: str) -> None:
            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(message: dict[str, Any]) -> None:
                pass

            await guard(_scope(path), receive, send)

        await asyncio.gather(*[one("/api/custom/custom") for _ in range(5)],
                             *[one("/graphql") for _ in range(5)])

    asyncio.run(go())
    assert peaks == {"heavy": 1, "all": 3}
    assert finished.index("light") < 2 and finished.count("light") == 5
    assert finished[-1] == "heavy"


# -- logging -----------------------------------------------------------------------------------
def test_refusals_are_one_log_line(secure_api: GraphQLClient, store: TokenStore,
                                   caplog: pytest.LogCaptureFixture,
                                   driver: neo4j.Driver) -> None:
    _, scoped = store.create("log-one-line", [PUBLIC])
    caplog.set_level(logging.INFO)
    secure_api.http.post("/graphql", json={"query": "{ datasets { name } }"},
                         headers={"Authorization": "Bearer nonsense"})
    secure_api.post('{ neuron(dataset: "t_sec_private", bodyId: "1") { bodyId } }', scoped)
    secure_api.http.post("/api/custom/custom", json={"cypher": "RETURN 1"},
                         headers={"Authorization": f"Bearer {scoped}"})
    refused = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 3, [r.getMessage() for r in caplog.records]
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in refused)
    assert "Traceback" not in caplog.text
