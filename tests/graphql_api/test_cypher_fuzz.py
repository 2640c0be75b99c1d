"""The Cypher endpoint fuzzed around a deny-list of effects, in many spellings.

Each example takes an effect (a write, a file or URL read, an admin command, another client's
transaction, a background job, a sleep) and disguises it: keywords in mixed case, names in
backticks or split by comments, nested query text in `\\uXXXX` escapes, the whole wrapped in
subqueries, unions, prefixes or in APOC's nested Cypher. Whatever comes back, none of the
effects may happen: no node written, no request at a local HTTP server, no canary file or admin
setting or other transaction in an answer, the other client's transaction still alive, no
background job, and Neo4j still answering. Run against the project's server, and against a
server configured the careless way (every APOC procedure, file URLs allowed), where the
endpoint's plan check stands alone.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import neo4j
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectome_query.graphdb.settings import Neo4jTarget
from connectome_query.graphql_api.app import create_app
from connectome_query.graphql_api.auth import AuthConfig
from tests.support.adversary import (
    Recorder,
    db_fingerprint,
    other_client_transaction,
    permissive_server,
    recording_http_server,
)

pytestmark = pytest.mark.neo4j

CANARY = "canary-5c1e7a"
VICTIM = "victim-9d2b44"
FUZZ: dict[str, Any] = {"deadline": None, "suppress_health_check": list(HealthCheck)}

EFFECTS = [
    "CREATE (:Hacked {by: 'fuzz'})",
    "MATCH (m:Meta) SET m.public = NOT coalesce(m.public, false)",
    "CALL apoc.cypher.doIt('CREATE (:Hacked) RETURN 1', {}) YIELD value RETURN value",
    "RETURN apoc.cypher.runFirstColumnMany('CREATE (:Hacked) RETURN 1', {}) AS x",
    "CALL apoc.create.node(['Hacked'], {}) YIELD node RETURN node",
    "LOAD CSV FROM '{http}/csv' AS l RETURN l",
    "CALL apoc.load.json('{http}/json') YIELD value RETURN value",
    "RETURN apoc.cypher.runFirstColumnMany('LOAD CSV FROM \"{http}/nested\" AS l RETURN l', {})",
    "LOAD CSV FROM 'file:///{canary}' AS l RETURN l",
    "CALL apoc.load.json('file:///{canary}') YIELD value RETURN value",
    "SHOW TRANSACTIONS YIELD currentQuery RETURN currentQuery",
    "CALL dbms.listConfig() YIELD name, value RETURN name, value",
    "SHOW SETTINGS YIELD name, value RETURN name, value",
    "CALL dbms.listConnections() YIELD connectionId RETURN connectionId",
    "CALL apoc.cypher.run('SHOW TRANSACTIONS YIELD currentQuery RETURN currentQuery', {}) "
    "YIELD value RETURN value",
    "TERMINATE TRANSACTIONS '{victim_id}'",
    "CALL apoc.cypher.run(\"TERMINATE TRANSACTIONS '{victim_id}'\", {}) YIELD value RETURN value",
    "CALL apoc.periodic.repeat('fuzz', 'CREATE (:Hacked)', 1) YIELD name RETURN name",
    "CALL apoc.periodic.submit('fuzz2', 'CREATE (:Hacked)') YIELD name RETURN name",
    "CALL apoc.periodic.iterate('RETURN 1', 'CREATE (:Hacked)', {}) YIELD batches RETURN batches",
    "CALL apoc.util.sleep(60000)",
    "RETURN apoc.cypher.runFirstColumnMany('CALL apoc.util.sleep(60000) RETURN 1', {}) AS x",
    "CALL apoc.cypher.runTimeboxed('CREATE (:Hacked) RETURN 1', {}, 1000) YIELD value "
    "RETURN value",
]
"""Effects, in plain spelling; `{http}`, `{canary}` and `{victim_id}` are filled in."""

KEYWORDS = re.compile(r"\b(CALL|LOAD|CSV|FROM|CREATE|SET|SHOW|TERMINATE|TRANSACTIONS|RETURN|"
                      r"YIELD|MATCH)\b")
NAME = re.compile(r"\b(apoc|dbms)((?:\.[A-Za-z]+)+)")
STRING = re.compile(r"'([^'\\]*)'")


@dataclass
class Target:
    """An app over one server, and what its attacks are watched with."""

    client: TestClient
    driver: neo4j.Driver
    http: Recorder
    victim_id: str
    canary: str
    answers: list[str] = field(default_factory=list)


def _mixed_case(text: str, draw: Any) -> str:
    return KEYWORDS.sub(lambda m: "".join(c.lower() if draw(st.booleans()) else c
                                          for c in m.group()), text)


def _disguise_name(match: re.Match[str], how: str) -> str:
    parts = [match.group(1), *match.group(2).split(".")[1:]]
    if how == "backticks":
        return ".".join(f"`{p}`" for p in parts)
    if how == "comments":
        return "/* x */.".join(parts[:-1]) + "/**/." + parts[-1]
    if how == "spaced":
        return " . ".join(parts)
    return match.group()


def _escape(match: re.Match[str]) -> str:
    return "'" + "".join(f"\\u{ord(c):04x}" for c in match.group(1)) + "'"


WRAPS = [
    "{q}",
    "  \n\t{q}\n// trailing comment",
    "/* lead */ {q}",
    "CALL {{ {q} }} RETURN 1 AS done",
    "WITH 1 AS x CALL (x) {{ {q} }} RETURN x",
    "OPTIONAL MATCH (n:Neuron) WITH count(n) AS c {q}",
    "MATCH (n) WITH n LIMIT 1 {q}",
    "RETURN 1 AS x UNION {q}",
    "RETURN [x IN [1] | x] AS y UNION ALL {q}",
    "RETURN apoc.cypher.runFirstColumnMany('{nested}', {{}}) AS nested",
    "CALL apoc.cypher.run('{nested}', {{}}) YIELD value RETURN value",
    "RETURN 'ünïcødé' AS `∑`, '{nested}' AS quoted",
]


@st.composite
def attacks(draw: Any) -> str:
    """An effect in a random disguise."""
    text = draw(st.sampled_from(EFFECTS))
    how = draw(st.sampled_from(["plain", "backticks", "comments", "spaced"]))
    text = NAME.sub(lambda m: _disguise_name(m, how), text)
    if draw(st.booleans()):
        text = _mixed_case(text, draw)
    if draw(st.booleans()):
        text = STRING.sub(_escape, text)
    wrap = draw(st.sampled_from(WRAPS))
    nested = "".join(f"\\u{ord(c):04x}" if draw(st.booleans()) else c
                     for c in text.replace("\\", "\\\\").replace("'", "\\'"))
    return wrap.format(q=text, nested=nested)


def _attack(target: Target, cypher: str) -> str:
    text = (cypher.replace("{http}", target.http.url).replace("{canary}", target.canary)
            .replace("{victim_id}", target.victim_id))
    t0 = time.monotonic()
    response = target.client.post("/api/custom/custom", json={"cypher": text})
    elapsed = time.monotonic() - t0
    assert response.status_code < 500, (text, response.text)
    # a sleep that ran would last until the endpoint's 20 s timeout at least
    assert elapsed < 15, (text, elapsed)
    body = response.text
    for secret in (CANARY, VICTIM, "leaked", "server.directories", "dbms.security"):
        assert secret not in body, (text, body[:300])
    assert target.http.requests == [], (text, target.http.requests)
    records, _, _ = target.driver.execute_query("MATCH (h:Hacked) RETURN count(h) AS n")
    assert records[0]["n"] == 0, text
    target.answers.append(body)
    return body


@contextmanager
def _watched(target: Neo4jTarget, canary: str) -> Iterator[Target]:
    """An app over `target` and its watchers; on leaving, the database must be as it was, the
    other client's transaction must commit, and no background job may be left."""
    with neo4j.GraphDatabase.driver(target.uri, auth=(target.user, target.password),
                                    notifications_min_severity="OFF") as driver:
        before = db_fingerprint(driver)
        with recording_http_server() as http, other_client_transaction(driver, VICTIM):
            records, _, _ = driver.execute_query(
                "SHOW TRANSACTIONS YIELD transactionId, metaData "
                "WHERE metaData.victim = $v RETURN transactionId", v=VICTIM)
            victim_id = records[0]["transactionId"]
            with TestClient(create_app(target, auth=AuthConfig(required=False))) as client:
                yield Target(client, driver, http, victim_id, canary)
            assert http.requests == []
        assert db_fingerprint(driver) == before
        jobs, _, _ = driver.execute_query("SHOW PROCEDURES YIELD name "
                                          "WHERE name = 'apoc.periodic.list' RETURN name")
        if jobs:
            listed, _, _ = driver.execute_query("CALL apoc.periodic.list() YIELD name "
                                                "RETURN collect(name) AS names")
            assert listed[0]["names"] == []
        assert driver.execute_query("RETURN 1 AS one").records[0]["one"] == 1


@pytest.fixture(scope="module")
def locked(neo4j_target: Neo4jTarget, sec_data: dict,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """The project's own server (its settings are part of the defence)."""
    canary = tmp_path_factory.mktemp("canary") / "canary.csv"
    canary.write_text(f"{CANARY}\n")
    with _watched(neo4j_target, str(canary).lstrip("/")) as target:
        yield target


@pytest.fixture(scope="module")
def careless(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """A server that would let everything through: only the plan check stops the effects."""
    server = permissive_server(tmp_path_factory.mktemp("permissive") / "neo4j")
    target = server.start(timeout=240)
    try:
        (server.home / "import" / "canary.csv").write_text(f"{CANARY}\n")
        with neo4j.GraphDatabase.driver(target.uri, auth=(target.user, target.password)) as d:
            d.execute_query("CREATE (:Neuron {dataset: 'fuzz@v1', bodyId: 1}), (:Meta {name: "
                            "'fuzz', dataset: 'fuzz@v1'})")
            _careless_indeed(d)
        with _watched(target, "canary.csv") as watched:
            yield watched
    finally:
        server.stop()


def _careless_indeed(driver: neo4j.Driver) -> None:
    """Straight to the careless server, the effects happen: the watchers can see them."""
    with recording_http_server() as http:
        rows = driver.execute_query(f"LOAD CSV FROM '{http.url}/probe' AS l RETURN l").records
        assert rows[0]["l"] == ["leaked", "1"] and http.requests == ["/probe"]
    rows = driver.execute_query("LOAD CSV FROM 'file:///canary.csv' AS l RETURN l").records
    assert rows[0]["l"] == [CANARY]
    nested = driver.execute_query(
        "RETURN apoc.cypher.runFirstColumnMany('RETURN 7 AS x', {}) AS v").records
    assert nested[0]["v"] == [7]


@settings(max_examples=120, **FUZZ)
@given(cypher=attacks())
def test_fuzzed_effects_on_the_project_server(locked: Target, cypher: str) -> None:
    _attack(locked, cypher)


@pytest.mark.slow
@settings(max_examples=200, **FUZZ)
@given(cypher=attacks())
def test_fuzzed_effects_with_the_plan_check_alone(careless: Target, cypher: str) -> None:
    _attack(careless, cypher)


@pytest.mark.slow
def test_every_effect_in_every_wrap_with_the_plan_check_alone(careless: Target) -> None:
    for effect in EFFECTS:
        for wrap in WRAPS:
            nested = effect.replace("\\", "\\\\").replace("'", "\\'")
            body = _attack(careless, wrap.format(q=effect, nested=nested))
            if "AS quoted" not in wrap:  # only the effect as a string literal may run
                assert '"errors"' in body, (effect, wrap, body[:300])
