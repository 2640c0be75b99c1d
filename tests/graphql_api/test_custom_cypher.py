"""The API cannot write: read sessions refuse writes; the Cypher endpoint checks the plan, caps
answers, and its READ transaction stops a write even with the plan check switched off."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import neo4j
import pytest
from fastapi.testclient import TestClient
from neo4j.exceptions import Neo4jError

from connectome_query.graphdb.settings import Neo4jTarget
from connectome_query.graphql_api.app import create_app
from connectome_query.graphql_api.auth import AuthConfig, TokenStore
from connectome_query.graphql_api.custom_cypher import CypherLimits, run_readonly
from connectome_query.graphql_api.db import read
from connectome_query.graphql_api.errors import QueryError
from tests.support.graph import current_key
from tests.support.graphql import PRIVATE, PUBLIC, GraphQLClient

pytestmark = pytest.mark.neo4j

WRITES = [
    "CREATE (n:Hacked {x: 1}) RETURN n",
    "MATCH (m:Meta) SET m.public = true RETURN m",
    f"MATCH (n:Neuron {{dataset: '{PRIVATE}'}}) DETACH DELETE n",
    "MERGE (n:Hacked {x: 2}) RETURN n",
    "MATCH (n:Neuron) REMOVE n.type RETURN count(n)",
    "CALL apoc.create.node(['Hacked'], {}) YIELD node RETURN node",
    "CALL apoc.periodic.iterate('RETURN 1', 'CREATE (:Hacked)', {}) YIELD batches RETURN batches",
    "CALL apoc.cypher.doIt('CREATE (:Hacked) RETURN 1', {}) YIELD value RETURN value",
    "MATCH (n:Neuron) WITH n LIMIT 1 FOREACH (x IN [1] | CREATE (:Hacked))",
    "LOAD CSV FROM 'file:///etc/passwd' AS line RETURN line",
    "CREATE INDEX hacked FOR (n:Hacked) ON (n.x)",
    "DROP CONSTRAINT neuron_key IF EXISTS",
    "CALL db.createLabel('Hacked')",
    "CREATE USER hacker SET PASSWORD 'abcdefgh1'",
    "SHOW USERS",
    "USE system SHOW USERS",
    "cReAtE (:Hacked)",
    "/* comment */ CREATE (:Hacked)",
    "MATCH (n) CALL { WITH n CREATE (:Hacked) } RETURN 1",
    "RETURN 1 UNION CREATE (h:Hacked) RETURN 1",
]
"""Writes (and admin or file access) in many spellings."""

def _fingerprint(driver: neo4j.Driver) -> tuple[int, int, int, object]:
    records, _, _ = driver.execute_query("""
        MATCH (n) WITH count(n) AS nodes
        OPTIONAL MATCH ()-[r]->() WITH nodes, count(r) AS rels
        OPTIONAL MATCH (h:Hacked) WITH nodes, rels, count(h) AS hacked
        OPTIONAL MATCH (m:Meta) RETURN nodes, rels, hacked, collect([m.dataset, m.public])""")
    r = records[0]
    return r[0], r[1], r[2], sorted(map(tuple, r[3]))


def _async_driver(target: Neo4jTarget) -> neo4j.AsyncDriver:
    return neo4j.AsyncGraphDatabase.driver(target.uri, auth=(target.user, target.password))


@pytest.fixture(scope="module")
def admin_token(store: TokenStore) -> str:
    return store.create("admin", ["*"])[1]


@pytest.fixture(scope="module")
def open_client(neo4j_target: Neo4jTarget, sec_data: dict) -> Iterator[TestClient]:
    with TestClient(create_app(neo4j_target, auth=AuthConfig(required=False))) as client:
        yield client


def test_read_sessions_refuse_writes(neo4j_target: Neo4jTarget, driver: neo4j.Driver,
                                     sec_data: dict) -> None:
    """`graphql_api.db.read` (what every resolver uses) refuses every write statement."""
    before = _fingerprint(driver)

    async def attempt_all() -> list[str]:
        refused = []
        async with _async_driver(neo4j_target) as drv:
            for cypher in WRITES:
                if cypher.startswith(("USE", "SHOW", "CREATE USER")):
                    continue  # system-database commands: the endpoint screens them
                try:
                    await read(drv, cypher, {})
                except (Neo4jError, QueryError):
                    refused.append(cypher)
        return refused

    refused = asyncio.run(attempt_all())
    tried = [c for c in WRITES if not c.startswith(("USE", "SHOW", "CREATE USER"))]
    assert refused == tried
    assert _fingerprint(driver) == before


def test_cypher_endpoint_refuses_writes(open_client: TestClient, driver: neo4j.Driver) -> None:
    before = _fingerprint(driver)
    for cypher in WRITES:
        response = open_client.post("/api/custom/custom", json={"cypher": cypher})
        assert response.status_code == 400, (cypher, response.text)
        assert "errors" in response.json()
    assert _fingerprint(driver) == before


def test_read_mode_and_server_back_up_the_plan_check(driver: neo4j.Driver,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """With the plan check and the query-type check switched off, the READ transaction and the
    server's settings (no APOC beyond a few functions, no file URLs) still refuse every write."""
    import connectome_query.graphql_api.custom_cypher as cc

    calls: list[str] = []
    monkeypatch.setattr(cc, "check_explained", lambda *args: calls.append("checked"))
    before = _fingerprint(driver)
    refused = 0
    tried = [c for c in WRITES if not c.startswith(("USE", "SHOW"))]
    for cypher in tried:
        try:
            cc.run_readonly(driver, cypher)
        except QueryError:
            refused += 1
    assert refused == len(tried)
    assert calls  # the switched-off check was really in the path
    assert _fingerprint(driver) == before


def test_cypher_endpoint_reads_like_neuprint(open_client: TestClient, driver: neo4j.Driver,
                                             sec_data: dict) -> None:
    g = sec_data[PUBLIC]
    key = current_key(driver, PUBLIC)
    cypher = (f"MATCH (a:Neuron {{dataset: '{key}'}})-[r:ConnectsTo]->(b:Neuron) "
              "RETURN a.bodyId AS pre, b.bodyId AS post, r.weight AS weight")
    response = open_client.post("/api/custom/custom", json={"cypher": cypher,
                                                            "dataset": PUBLIC})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["columns"] == ["pre", "post", "weight"]
    assert {(a, b): w for a, b, w in body["data"]} == {
        (a, b): d["weight"] for a, b, d in g.edges(data=True)}
    node = open_client.post("/api/custom/custom", json={
        "cypher": f"MATCH (n:Neuron {{dataset: '{key}'}}) RETURN n, n.somaLocation LIMIT 1"})
    assert node.status_code == 200
    props, soma = node.json()["data"][0]
    assert props["dataset"] == key and len(soma) == 3


@pytest.mark.parametrize("body, status", [
    ({"cypher": ""}, 400), ({"cypher": 5}, 400), ({}, 400), ({"cypher": "RETURN 1",
                                                             "dataset": "bad name"}, 400),
    ({"cypher": "MATCH (n RETURN n"}, 400), ([1, 2], 400), ({"cypher": "x" * 30_000}, 400),
])
def test_cypher_endpoint_bad_requests(open_client: TestClient, body: object, status: int) -> None:
    response = open_client.post("/api/custom/custom", json=body)
    assert response.status_code == status
    assert "Traceback" not in response.text


def test_cypher_endpoint_needs_all_dataset_token(secure_api: GraphQLClient, store: TokenStore,
                                                 admin_token: str) -> None:
    body = {"cypher": "MATCH (m:Meta) RETURN m.name"}
    assert secure_api.http.post("/api/custom/custom", json=body).status_code == 403
    _, scoped = store.create("scoped", [PRIVATE])
    assert secure_api.http.post("/api/custom/custom", json=body,
                                headers={"Authorization": f"Bearer {scoped}"}).status_code == 403
    ok = secure_api.http.post("/api/custom/custom", json=body,
                              headers={"Authorization": f"Bearer {admin_token}"})
    assert ok.status_code == 200
    assert PRIVATE in {row[0] for row in ok.json()["data"]}


def _message(driver: neo4j.Driver, cypher: str, limits: CypherLimits) -> str:
    with pytest.raises(QueryError) as info:
        run_readonly(driver, cypher, limits=limits)
    return str(info.value)


def test_cypher_row_byte_caps_and_timeout(driver: neo4j.Driver) -> None:
    limits = CypherLimits(timeout=20.0, max_rows=10, max_bytes=10_000)
    answer = run_readonly(driver, "UNWIND range(1, 10) AS x RETURN x", limits=limits)
    assert json.loads(answer.body()) == {"columns": ["x"], "data": [[i] for i in range(1, 11)]}
    assert "more than 10 rows" in _message(driver, "UNWIND range(1, 11) AS x RETURN x", limits)
    big = "RETURN reduce(s = '', i IN range(1, 2000) | s + 'abcdefgh') AS s"
    assert "over 10,000 bytes" in _message(driver, big, limits)
    assert len(run_readonly(driver, big, limits=CypherLimits(20.0, 10, 20_000)).body()) > 16_000
    slow = ("UNWIND range(1, 400000000) AS x WITH x WHERE x % 7 = 99999999 RETURN count(x)")
    assert "longer than its 1 s limit" in _message(driver, slow, CypherLimits(1.0, 10, 10_000))


def test_tokens_file_is_outside_the_graph(driver: neo4j.Driver, tokens_file: Path) -> None:
    records, _, _ = driver.execute_query("MATCH (t:ApiToken) RETURN count(t)")
    assert records[0][0] == 0 and tokens_file.exists()
