"""Tokens, per-dataset permission, public datasets, and errors that leak nothing."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import neo4j
import networkx as nx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from connectome_query.cli.main import app as cli
from connectome_query.graphdb.settings import Neo4jTarget
from connectome_query.graphql_api.app import create_app
from connectome_query.graphql_api.auth import AuthConfig, TokenStore
from tests.support.graphql import PRIVATE, PUBLIC, GraphQLClient

pytestmark = pytest.mark.neo4j

LEAKY = re.compile(r"Traceback|File \"|neo4j\.|bolt://|password|\.py\b|Neo\.ClientError",
                   re.IGNORECASE)

UPSTREAM = """query($d: String!, $id: BodyId!) { neuron(dataset: $d, bodyId: $id) {
    bodyId upstream(first: 1000) { weight partner { bodyId } } } }"""


def _upstream(g: nx.DiGraph, body: int) -> dict[str, int]:
    return {str(a): d["weight"] for a, _, d in g.in_edges(body, data=True)}


def _busiest(g: nx.DiGraph) -> int:
    return max(g.nodes, key=lambda n: g.in_degree(n))


def test_anonymous_sees_public_datasets_only(secure_api: GraphQLClient,
                                             driver: neo4j.Driver) -> None:
    records, _, _ = driver.execute_query(
        "MATCH (m:Meta) WHERE m.public = true AND m.current RETURN m.name")
    public = {r[0] for r in records}
    assert PUBLIC in public and PRIVATE not in public
    body = secure_api.gql("{ datasets { name } }")
    assert {d["name"] for d in body["data"]["datasets"]} == public


def test_public_dataset_readable_without_token(secure_api: GraphQLClient, sec_data: dict) -> None:
    g = sec_data[PUBLIC]
    body_id = _busiest(g)
    data = secure_api.gql(UPSTREAM, d=PUBLIC, id=str(body_id))["data"]
    got = {c["partner"]["bodyId"]: c["weight"] for c in data["neuron"]["upstream"]}
    assert got == _upstream(g, body_id)


def test_private_dataset_error_equals_unknown_dataset(secure_api: GraphQLClient,
                                                      sec_data: dict) -> None:
    body_id = str(_busiest(sec_data[PRIVATE]))
    private = secure_api.gql(UPSTREAM, d=PRIVATE, id=body_id)
    missing = secure_api.gql(UPSTREAM, d="t_no_such_dataset", id=body_id)
    assert private["data"] is None or private["data"]["neuron"] is None
    msg_private = private["errors"][0]["message"]
    msg_missing = missing["errors"][0]["message"]
    assert msg_private.replace(PRIVATE, "X") == msg_missing.replace("t_no_such_dataset", "X")
    for query in (f'{{ dataset(name: "{PRIVATE}") {{ name neuronCount }} }}',
                  f'{{ neurons(dataset: "{PRIVATE}", first: 5) {{ totalCount }} }}'):
        body = secure_api.gql(query)
        assert body["errors"] and PRIVATE in body["errors"][0]["message"]
        assert not any((body["data"] or {}).values())


def test_token_reads_its_dataset(secure_api: GraphQLClient, store: TokenStore,
                                 sec_data: dict) -> None:
    _, secret = store.create("lab-a", [PRIVATE])
    g = sec_data[PRIVATE]
    body_id = _busiest(g)
    data = secure_api.gql(UPSTREAM, secret, d=PRIVATE, id=str(body_id))["data"]
    got = {c["partner"]["bodyId"]: c["weight"] for c in data["neuron"]["upstream"]}
    assert got == _upstream(g, body_id)
    names = {d["name"] for d in secure_api.gql("{ datasets { name } }", secret)
             ["data"]["datasets"]}
    assert {PRIVATE, PUBLIC} <= names


def test_token_for_other_dataset_is_forbidden(secure_api: GraphQLClient, store: TokenStore,
                                              sec_data: dict) -> None:
    _, secret = store.create("lab-b", [PUBLIC])
    body = secure_api.gql(UPSTREAM, secret, d=PRIVATE, id=str(_busiest(sec_data[PRIVATE])))
    assert "errors" in body and not (body["data"] or {}).get("neuron")
    names = {d["name"] for d in secure_api.gql("{ datasets { name } }", secret)
             ["data"]["datasets"]}
    assert PRIVATE not in names


@pytest.mark.parametrize("header", [
    "Bearer cq_00000000_" + "A" * 43, "Bearer not-a-token", "Basic dXNlcjpwYXNz", "Bearer ",
    "Bearer cq_zzzzzzzz_" + "A" * 43,
])
def test_bad_credentials_get_401(secure_api: GraphQLClient, header: str) -> None:
    response = secure_api.http.post("/graphql", json={"query": "{ datasets { name } }"},
                                    headers={"Authorization": header})
    assert response.status_code == 401
    body = response.json()
    assert body["errors"] == [{"message": "invalid or revoked API token"}]
    assert body["error"] == "invalid or revoked API token"
    assert set(body) == {"errors", "error", "code"}


def test_revoked_token_is_refused(secure_api: GraphQLClient, store: TokenStore) -> None:
    token, secret = store.create("temp", [PRIVATE])
    query = f'{{ dataset(name: "{PRIVATE}") {{ name }} }}'
    assert secure_api.gql(query, secret)["data"]["dataset"]["name"] == PRIVATE
    assert [t.id for t in store.revoke(token.id)] == [token.id]
    assert secure_api.post(query, secret).status_code == 401


def test_tampered_secret_is_refused(secure_api: GraphQLClient, store: TokenStore) -> None:
    _, secret = store.create("tamper", [PRIVATE])
    flipped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    assert secure_api.post("{ datasets { name } }", flipped).status_code == 401


def test_tokens_are_hashed_at_rest(tokens_file: Path, store: TokenStore) -> None:
    token, secret = store.create("hashed", [PUBLIC])
    text = tokens_file.read_text()
    raw = secret.split("_", 2)[2]
    assert raw not in text and secret not in text
    stored = next(t for t in json.loads(text)["tokens"] if t["id"] == token.id)
    assert stored["hash"] == hashlib.sha256(raw.encode()).hexdigest()
    assert tokens_file.stat().st_mode & 0o077 == 0


def test_tokens_cli_create_list_revoke(tmp_path: Path) -> None:
    runner = CliRunner()
    file = tmp_path / "t.json"
    created = runner.invoke(cli, ["tokens", "create", "ci", "-d", PUBLIC, "-d", "*",
                                  "--file", str(file)])
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[-1]
    assert TokenStore(file).verify(secret).name == "ci"
    listed = runner.invoke(cli, ["tokens", "list", "--json", "--file", str(file)])
    assert listed.exit_code == 0
    rows = json.loads(listed.stdout)
    assert [r["name"] for r in rows] == ["ci"] and sorted(rows[0]["datasets"]) == ["*", PUBLIC]
    assert "hash" not in rows[0] and secret.split("_", 2)[2] not in listed.stdout
    revoked = runner.invoke(cli, ["tokens", "revoke", rows[0]["id"], "--file", str(file)])
    assert revoked.exit_code == 0
    again = runner.invoke(cli, ["tokens", "revoke", rows[0]["id"], "--file", str(file)])
    assert again.exit_code == 1 and "no active token" in again.output
    bad = runner.invoke(cli, ["tokens", "create", "x", "-d", "1bad name", "--file", str(file)])
    assert bad.exit_code == 1 and "invalid dataset name" in bad.output


def test_tokens_cli_public_flag(driver: neo4j.Driver, sec_data: dict) -> None:
    runner = CliRunner()

    def flag() -> object:
        records, _, _ = driver.execute_query(
            "MATCH (m:Meta {name: $d, current: true}) RETURN m.public", d=PRIVATE)
        return records[0][0]

    try:
        assert runner.invoke(cli, ["tokens", "public", PRIVATE]).exit_code == 0
        assert flag() is True
    finally:
        assert runner.invoke(cli, ["tokens", "public", PRIVATE, "--off"]).exit_code == 0
    assert flag() is False
    missing = runner.invoke(cli, ["tokens", "public", "t_missing_ds"])
    assert missing.exit_code == 1 and "no dataset" in missing.output


def test_auth_off_by_default_reads_everything(neo4j_target: Neo4jTarget, sec_data: dict,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONNECTOME_AUTH", raising=False)
    with TestClient(create_app(neo4j_target)) as client:
        body = client.post("/graphql", json={"query": "{ datasets { name } }"}).json()
    assert {PUBLIC, PRIVATE} <= {d["name"] for d in body["data"]["datasets"]}


def test_env_enables_auth(neo4j_target: Neo4jTarget, sec_data: dict, tmp_path: Path,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONNECTOME_AUTH", "required")
    monkeypatch.setenv("CONNECTOME_TOKENS_FILE", str(tmp_path / "tokens.json"))
    config = AuthConfig.from_env()
    assert config.required and config.rate == 20.0
    with TestClient(create_app(neo4j_target)) as client:
        body = client.post("/graphql", json={"query": "{ datasets { name } }"}).json()
    names = {d["name"] for d in body["data"]["datasets"]}
    assert PUBLIC in names and PRIVATE not in names
    monkeypatch.setenv("CONNECTOME_AUTH", "maybe")
    with pytest.raises(ValueError, match="CONNECTOME_AUTH"):
        AuthConfig.from_env()


def test_internal_errors_are_masked(neo4j_target: Neo4jTarget, sec_data: dict) -> None:
    """A broken database credential makes every resolver fail inside; the client sees a
    generic message, no stack trace, no server details."""
    wrong = Neo4jTarget(uri=neo4j_target.uri, user="t_nobody", password="wrong-password")
    with TestClient(create_app(wrong, auth=AuthConfig(required=False))) as client:
        for query in ("{ datasets { name } }",
                      f'{{ neuron(dataset: "{PUBLIC}", bodyId: "1") {{ bodyId }} }}',
                      "{ datasets { name ", "{ nope }"):
            response = client.post("/graphql", json={"query": query})
            assert response.status_code in (200, 400)
            assert not LEAKY.search(response.text), response.text
            assert response.json()["errors"]
