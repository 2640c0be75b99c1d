"""How the read-only Cypher endpoint decides: Neo4j's plan against the allowlist, and the server
settings behind it. Valid reads pass whatever words their strings and aliases hold; everything
on the deny-list is refused with a message naming what, and changes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import neo4j
import pytest
from fastapi.testclient import TestClient

from connectome_query.graphdb.local_server import PLUGIN_ALLOWLIST, LocalNeo4j, memory_limits
from connectome_query.graphdb.settings import Neo4jTarget
from connectome_query.graphql_api.app import create_app
from connectome_query.graphql_api.auth import AuthConfig
from connectome_query.graphql_api.custom_cypher import to_json
from connectome_query.graphql_api.cypher_allowlist import (
    BUILTIN_FUNCTIONS,
    PROCEDURES,
    REFUSED_BUILTIN_FUNCTIONS,
)
from connectome_query.graphql_api.cypher_plan import PlanRefused, calls, check_plan
from tests.support.adversary import db_fingerprint, recording_http_server
from tests.support.graph import current_key
from tests.support.graphql import PUBLIC

VALID = [
    "MATCH (n:Neuron {{dataset: '{key}'}}) RETURN n.bodyId AS start ORDER BY start LIMIT 5",
    "MATCH (n:Neuron {{dataset: '{key}'}}) WHERE n.type <> 'set' RETURN n.instance AS `create`, "
    "'DELETE' AS merge, \"LOAD CSV\" AS load LIMIT 3",
    "RETURN 'apoc.cypher.runFirstColumnMany(\"CREATE ()\", {{}})' AS s, 'dbms.listConfig()' AS t",
    "MATCH (n:Neuron {{dataset: '{key}'}})-[r:ConnectsTo]->(m:Neuron) WHERE r.weight >= 3 "
    "RETURN n.bodyId, m.bodyId, r.weight ORDER BY r.weight DESC, n.bodyId SKIP 1 LIMIT 10",
    "MATCH (n:Neuron) WHERE n.dataset = '{key}' AND n.bodyId IN [1, 2, 3] "
    "RETURN n {{.*, roiInfo: apoc.convert.fromJsonMap(coalesce(n.roiInfo, '{{}}'))}} AS n",
    "MATCH (n:Neuron {{dataset: '{key}'}}) RETURN apoc.map.removeKeys(properties(n), "
    "['roiInfo', 'dataset']) AS p LIMIT 2",
    "RETURN apoc.convert.fromJsonList('[1,2]') AS l, apoc.version() AS v",
    "MATCH (a:Neuron {{dataset: '{key}'}})-[:ConnectsTo*1..2]->(b:Neuron) WITH a LIMIT 3 "
    "RETURN count(a)",
    "MATCH (a:Neuron {{dataset: '{key}'}}) WITH a ORDER BY a.bodyId LIMIT 2 WITH collect(a) AS ab "
    "MATCH p = shortestPath((x)-[:ConnectsTo*..4]->(y)) WHERE x = ab[0] AND y = ab[1] "
    "RETURN [v IN nodes(p) | v.bodyId] AS ids, [r IN relationships(p) | r.weight] AS w",
    "MATCH p = SHORTEST 1 (a:Neuron {{dataset: '{key}', bodyId: 1}})-[:ConnectsTo]->+(b:Neuron)"
    " RETURN length(p) LIMIT 1",
    "MATCH (a:Neuron {{dataset: '{key}'}}) ((x)-[:ConnectsTo]->(y)){{1,2}} (b:Neuron) "
    "RETURN count(*)",
    "MATCH (n:Neuron {{dataset: '{key}'}}) OPTIONAL MATCH (n)-[r:GapJunction]-(m) "
    "RETURN n.bodyId, count(m) AS gaps ORDER BY n.bodyId LIMIT 5",
    "MATCH (n:Neuron {{dataset: '{key}'}}) WHERE EXISTS {{ (n)-[:ConnectsTo]->(:Neuron) }} "
    "RETURN n.bodyId, COUNT {{ (n)--() }} AS degree, "
    "COLLECT {{ MATCH (n)-->(m) RETURN m.bodyId }} AS outs LIMIT 3",
    "MATCH (n:Neuron {{dataset: '{key}'}}) RETURN n.bodyId, "
    "[(n)-[r:ConnectsTo]->(m) WHERE r.weight > 2 | m.bodyId] AS strong LIMIT 3",
    "MATCH (n:Neuron {{dataset: '{key}'}}) RETURN CASE WHEN n.pre > 10 THEN 'big' "
    "ELSE 'small' END AS size, count(*) AS c ORDER BY size",
    "MATCH (n:Neuron {{dataset: '{key}'}}) WHERE n.instance =~ 'n.*' OR n.type STARTS WITH 'T' "
    "OR n.type ENDS WITH 'L' OR n.type CONTAINS 'x' OR n.status IS NULL RETURN count(n)",
    "RETURN reduce(s = 0, x IN [1, 2, 3] | s + x) AS six, all(x IN [1] WHERE x > 0) AS a, "
    "any(x IN [1] WHERE x > 0) AS b, none(x IN [1] WHERE x > 2) AS c, "
    "single(x IN [1] WHERE x = 1) AS d",
    "MATCH (n:Neuron {{dataset: '{key}'}}) RETURN n.bodyId AS id UNION "
    "MATCH (n:Segment {{dataset: '{key}'}}) RETURN n.bodyId AS id",
    "CALL {{ MATCH (n:Neuron {{dataset: '{key}'}}) RETURN n LIMIT 3 }} RETURN count(n)",
    "MATCH (n:Neuron {{dataset: '{key}'}}) CALL (n) {{ MATCH (n)-[r:ConnectsTo]->() "
    "RETURN sum(r.weight) AS w }} RETURN n.bodyId, w ORDER BY n.bodyId LIMIT 3",
    "CALL db.labels() YIELD label RETURN label ORDER BY label",
    "CALL db.relationshipTypes()",
    "CALL db.propertyKeys() YIELD propertyKey RETURN count(propertyKey)",
    "RETURN datetime('2020-01-01T00:00:00Z').year AS y, date() > date('2000-01-01') AS later, "
    "duration.between(date('2020-01-01'), date('2021-01-01')).months AS m, "
    "point.distance(point({{x: 0, y: 0}}), point({{x: 3, y: 4}})) AS five",
    "RETURN toUpper('a'), substring('abc', 1), split('a,b', ','), size('abc'), trim(' x '), "
    "toInteger('3'), toFloat('1.5'), round(2.5), sqrt(4), abs(-1), rand() < 1, id(null)",
    "MATCH (n:Neuron|Segment {{dataset: '{key}'}}) RETURN count(n)",
    "MATCH ()-[r:ConnectsTo {{dataset: '{key}'}}]->() RETURN count(r), sum(r.weight)",
    "MATCH (n:Neuron {{dataset: '{key}'}}) RETURN DISTINCT n.type ORDER BY n.type",
    "MATCH (n:Neuron {{dataset: '{key}'}}) WITH n.type AS t, count(*) AS c WHERE c > 1 "
    "RETURN t, c ORDER BY t",
    "UNWIND [1, 2, 3] AS x RETURN x * 2 AS y, x % 2 = 0 AS even, x ^ 2 AS sq",
    "MATCH (n:Neuron {{dataset: '{key}'}}) RETURN n.bodyId /* RETURN 'CREATE' */ LIMIT 1 "
    "// DELETE everything",
    "MATCH (n:`Neuron` {{`dataset`: '{key}'}}) RETURN n.`bodyId` AS `set` LIMIT 1",
    "RETURN '\\u0043REATE' AS c, \"\\\"quoted\\\" SET\" AS q, 'ünïcødé ∑' AS u",
    "MATCH (m:Meta) RETURN m.name, m.public ORDER BY m.name",
    "MATCH (n:Neuron {{dataset: '{key}'}}) RETURN avg(n.pre), min(n.pre), max(n.pre), "
    "stdev(n.pre), percentileCont(n.pre, 0.5), sum(n.pre), collect(DISTINCT n.type)[0..3]",
    "MATCH (n:Neuron {{dataset: '{key}'}}) RETURN valueType(n.bodyId), "
    "n.bodyId IS :: INTEGER, nullIf(n.type, ''), coalesce(n.type, n.instance, 'none') LIMIT 2",
    "MATCH (n:Neuron {{dataset: '{key}'}})-[r]-(m) WITH n, r, m LIMIT 1 "
    "RETURN type(r), startNode(r) IN [n, m], labels(n), keys(n)",
    "MATCH (a:Neuron {{dataset: '{key}'}})-[:ConnectsTo]->(b)-[:ConnectsTo]->(c)"
    "-[:ConnectsTo]->(a) RETURN count(*) AS triangles",
]
"""Reads (with `{key}`, the public test dataset's version key) that must run."""

REFUSED = [
    ("CREATE (n:Hacked) RETURN n", "writing"),
    ("MATCH (m:Meta) SET m.public = true", "writing"),
    ("MATCH (m:Meta) DETACH DELETE m", "writing"),
    ("MERGE (h:Hacked {x: 1}) RETURN h", "writing"),
    ("FOREACH (x IN [1] | CREATE (:Hacked))", "FOREACH"),
    ("UNWIND range(1, 3) AS i CALL (i) { RETURN i AS j } IN TRANSACTIONS RETURN j",
     "IN TRANSACTIONS"),
    ("RETURN apoc.cypher.runFirstColumnMany('RETURN 1', {})", "apoc.cypher.runFirstColumnMany"),
    ("RETURN `apoc`.`cypher`.runFirstColumnMany('RETURN 1', {})", "runFirstColumnMany"),
    ("RETURN apoc./*x*/cypher.runFirstColumnMany('RETURN 1', {})", "runFirstColumnMany"),
    ("CALL apoc.util.sleep(10)", "apoc.util.sleep"),
    ("CALL apoc.periodic.repeat('x', 'RETURN 1', 1)", "apoc.periodic.repeat"),
    ("CALL apoc.load.json('http://127.0.0.1:1/x')", "apoc.load.json"),
    ("LOAD CSV FROM 'http://127.0.0.1:1/x' AS l RETURN l", "LOAD CSV"),
    ("LOAD CSV FROM 'file:///etc/passwd' AS l RETURN l", "LOAD CSV"),
    ("CALL dbms.listConfig() YIELD name RETURN name", "dbms.listConfig"),
    ("CALL dbms.listConnections()", "dbms.listConnections"),
    ("CALL dbms.components()", "dbms.components"),
    ("CALL db.stats.collect('QUERIES')", "db.stats.collect"),
    ("CALL db.awaitIndexes(100)", "db.awaitIndexes"),
    ("CALL tx.setMetaData({a: 1})", "tx.setMetaData"),
    ("SHOW TRANSACTIONS", "ShowTransactions"),
    ("SHOW TRANSACTIONS YIELD currentQuery RETURN currentQuery", "ShowTransactions"),
    ("TERMINATE TRANSACTIONS 'neo4j-transaction-1'", "TERMINATE TRANSACTIONS"),
    ("SHOW SETTINGS", "ShowSettings"),
    ("SHOW PROCEDURES", "ShowProcedures"),
    ("SHOW INDEXES", "ShowIndexes"),
    ("SHOW USERS", "database"),
    ("SHOW DATABASES", "database"),
    ("USE system CALL dbms.showCurrentUser()", "database"),
    ("CREATE INDEX hacked FOR (n:Hacked) ON (n.x)", "writing"),
    ("CREATE USER hacker SET PASSWORD 'abcdefgh1'", ""),
]
"""Queries the endpoint must refuse, and a word its message must hold."""

pytestmark = pytest.mark.neo4j


@pytest.fixture(scope="module")
def open_client(neo4j_target: Neo4jTarget, sec_data: dict) -> Iterator[TestClient]:
    with TestClient(create_app(neo4j_target, auth=AuthConfig(required=False))) as client:
        yield client


def _cypher(client: TestClient, cypher: str) -> Any:
    return client.post("/api/custom/custom", json={"cypher": cypher})


# -- the plan walk, on plans written by hand ---------------------------------------------------
def _plan(operator: str, details: str = "", *children: dict[str, Any]) -> dict[str, Any]:
    return {"operatorType": operator, "args": {"Details": details, "planner": "COST"},
            "children": list(children)}


def test_calls_reads_names_not_strings_or_aliases() -> None:
    assert calls("apoc.map.removeKeys(n, $k) AS `apoc.cypher.doIt(x)`") == [
        "apoc.map.removeKeys"]
    assert calls("`apoc`.`cypher`.runMany($autostring_0) AS x") == ["apoc.cypher.runMany"]
    assert calls("'apoc.cypher.doIt(' + \"db.x(\" AS s") == []
    assert calls("RANGE INDEX n:Neuron(dataset, bodyId) WHERE dataset = $d") == ["Neuron"]
    assert calls("size(reduce(s = $a, i IN range($b, $c) | s + s))") == ["size", "reduce",
                                                                          "range"]


@pytest.mark.parametrize(("plan", "words"), [
    (_plan("ProduceResults@neo4j", "x", _plan("Projection@neo4j",
                                               "apoc.cypher.runFirstColumnMany($q, {}) AS x")),
     "apoc.cypher.runFirstColumnMany"),
    (_plan("ProduceResults@neo4j", "", _plan("ProcedureCall@neo4j",
                                              "apoc.cypher.run($q, {}) :: (value :: MAP)")),
     "procedure 'apoc.cypher.run'"),
    (_plan("ProduceResults@neo4j", "", _plan("Filter@neo4j", "dbms.anything(n) > 1")),
     "dbms.anything"),
    (_plan("ProduceResults@system", ""), "database 'neo4j'"),
    (_plan("ProduceResults@neo4j", "", _plan("SomethingNew@neo4j", "")), "SomethingNew"),
    (_plan("ProduceResults@neo4j", "", _plan("LoadCSV@neo4j", "line")), "LOAD CSV"),
])
def test_check_plan_refuses_without_help_from_the_server(plan: dict[str, Any],
                                                         words: str) -> None:
    """The namespaces refused outright need no list of the server's functions."""
    with pytest.raises(PlanRefused, match=words.replace(".", r"\.").replace("(", r"\(")):
        check_plan(plan, "neo4j", frozenset())


def test_check_plan_passes_allowed_calls() -> None:
    plan = _plan("ProduceResults@neo4j", "n", _plan(
        "Projection@neo4j", "apoc.convert.fromJsonMap(n.roiInfo) AS r, count(n) AS c, "
        "x AS `apoc.cypher.doIt(x)`, y AS `(`", _plan("NodeByLabelScan@neo4j", "n:Neuron")))
    check_plan(plan, "neo4j", frozenset({"apoc.convert.fromjsonmap", "count"}))
    with pytest.raises(PlanRefused, match="keys"):
        check_plan(_plan("Projection@neo4j", "mystery.keys(n)"), "neo4j",
                   frozenset({"mystery.keys"}))


# -- the allowlist against the server ----------------------------------------------------------
def test_every_server_function_is_reviewed(driver: neo4j.Driver,
                                           neo4j_server: LocalNeo4j | None) -> None:
    """A function Neo4j adds in an upgrade fails this test until it is allowed or refused."""
    records, _, _ = driver.execute_query(
        "SHOW FUNCTIONS YIELD name, isBuiltIn RETURN name, isBuiltIn")
    builtin = {r["name"] for r in records if r["isBuiltIn"]}
    assert builtin - BUILTIN_FUNCTIONS - REFUSED_BUILTIN_FUNCTIONS == set()
    assert builtin >= BUILTIN_FUNCTIONS
    if neo4j_server is not None:  # the project's server loads exactly the allowlisted plugins
        assert {r["name"] for r in records if not r["isBuiltIn"]} == set(PLUGIN_ALLOWLIST)


def test_allowed_procedures_only_read(driver: neo4j.Driver) -> None:
    records, _, _ = driver.execute_query("SHOW PROCEDURES YIELD name, mode RETURN name, mode")
    modes = {r["name"]: r["mode"] for r in records}
    assert {p: modes.get(p) for p in PROCEDURES} == dict.fromkeys(PROCEDURES, "READ")


# -- through the endpoint ----------------------------------------------------------------------
def test_valid_reads_run(open_client: TestClient, driver: neo4j.Driver) -> None:
    key = current_key(driver, PUBLIC)
    for template in VALID:
        cypher = template.format(key=key)
        response = _cypher(open_client, cypher)
        assert response.status_code == 200, (cypher, response.text)
        records, _, keys = driver.execute_query(cypher, routing_="r")
        assert response.json()["columns"] == list(keys)
        if "rand()" not in cypher and "date()" not in cypher:
            direct = [[to_json(v) for v in r.values()] for r in records]
            assert _rows(response.json()["data"]) == _rows(direct), cypher


def _rows(rows: list[list[Any]]) -> list[str]:
    return sorted(json.dumps(row, sort_keys=True) for row in rows)


def test_deny_list_is_refused_and_changes_nothing(open_client: TestClient,
                                                  driver: neo4j.Driver) -> None:
    before = db_fingerprint(driver)
    for cypher, words in REFUSED:
        response = _cypher(open_client, cypher)
        assert response.status_code == 400, (cypher, response.text)
        message = response.json()["errors"][0]["message"]
        assert words in message, (cypher, message)
        assert message != "Unexpected error."
    assert db_fingerprint(driver) == before


# -- the server's own layers -------------------------------------------------------------------
def test_server_settings(neo4j_server: LocalNeo4j | None) -> None:
    if neo4j_server is None:
        pytest.skip("checks the project's own server")
    conf = (neo4j_server.home / "conf" / "neo4j.conf").read_text()
    tx_max, tx_total = memory_limits(neo4j_server.config.heap)
    for line in (f"dbms.security.procedures.allowlist={','.join(PLUGIN_ALLOWLIST)}",
                 "dbms.security.allow_csv_import_from_file_urls=false",
                 "internal.dbms.cypher_ip_blocklist=0.0.0.0/0,::/0",
                 f"db.memory.transaction.max={tx_max}",
                 f"dbms.memory.transaction.total.max={tx_total}"):
        assert line in conf.splitlines()
    assert "unrestricted" not in conf
    pid = neo4j_server.pid()
    assert pid and b"ExitOnOutOfMemoryError" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert "apoc.import.file.enabled=false" in (neo4j_server.home / "conf" / "apoc.conf"
                                                ).read_text()
    import_dir = Path(next(line.split("=", 1)[1] for line in conf.splitlines()
                           if line.startswith("server.directories.import=")))
    assert import_dir.is_dir() and not any(import_dir.iterdir())


def test_server_refuses_url_and_file_loads_on_its_own(driver: neo4j.Driver,
                                                      neo4j_server: LocalNeo4j | None,
                                                      tmp_path: Path) -> None:
    """Straight to Neo4j, no endpoint: LOAD CSV reaches no URL and no file."""
    if neo4j_server is None:
        pytest.skip("checks the project's own server")
    canary = tmp_path / "canary.csv"
    canary.write_text("canary-3141\n")
    with recording_http_server() as http:
        for url in (f"{http.url}/x.csv", f"file://{canary}"):
            with pytest.raises(neo4j.exceptions.ClientError, match=r"blocked|file_urls"):
                driver.execute_query(f"LOAD CSV FROM '{url}' AS l RETURN l")
    assert http.requests == []


def test_memory_bombs_are_killed_and_the_database_lives(open_client: TestClient,
                                                        driver: neo4j.Driver) -> None:
    before = db_fingerprint(driver)
    for cypher in ("RETURN size(reduce(s = 'x', i IN range(1, 30) | s + s))",
                   "UNWIND range(1, 20000000) AS x WITH collect(toString(x) + 'pad') AS c "
                   "RETURN size(c)"):
        response = _cypher(open_client, cypher)
        assert response.status_code == 400, response.text
        assert "more memory than the server gives one query" in response.text
        assert _cypher(open_client, "RETURN 1 AS one").json()["data"] == [[1]]
    records, _, _ = driver.execute_query("RETURN 2 AS two")
    assert records[0]["two"] == 2
    assert db_fingerprint(driver) == before
