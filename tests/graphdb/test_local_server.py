"""The project-managed Neo4j: start, status, a clean stop, and the CLI around it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connectome_query.cli.main import app
from connectome_query.graphdb.local_server import (
    JVM_FLAGS,
    PLUGIN_ALLOWLIST,
    LocalNeo4j,
    Neo4jServerError,
    memory_limits,
)
from connectome_query.graphdb.settings import LocalServerConfig, cache_dir
from tests.support.net import free_port

pytestmark = pytest.mark.neo4j


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_session_server_is_real_neo4j_5_26(neo4j_server: LocalNeo4j | None, driver) -> None:
    records, _, _ = driver.execute_query(
        "CALL dbms.components() YIELD name, versions, edition RETURN name, versions, edition")
    assert records[0]["versions"][0].startswith("5.26")
    apoc, _, _ = driver.execute_query("RETURN apoc.version() AS v")
    assert apoc[0]["v"].startswith("5.26")
    if neo4j_server is not None:
        assert neo4j_server.status().running
        assert (neo4j_server.home / "conf" / "neo4j.conf").read_text().count("127.0.0.1") >= 2


def test_second_instance_starts_and_stops_cleanly(tmp_path: Path, neo4j_server) -> None:
    if neo4j_server is None:
        pytest.skip("runs the project's own server")
    port = free_port()
    server = LocalNeo4j(LocalServerConfig(home=tmp_path / "n2", cache=cache_dir(),
                                          bolt_port=port, heap="512m", pagecache="64m"))
    target = server.start(timeout=240)
    assert port_open(port) and target.password
    again = server.start(timeout=30)  # already running: returns at once, same password
    assert again == target
    assert server.stop() is True
    assert not port_open(port)
    assert server.status().running is False
    assert "Stopped" in server.log_tail(200) or "Stopping" in server.log_tail(200)


def test_cli_status_with_neo4j_uri(neo4j_target) -> None:
    result = CliRunner().invoke(app, ["neo4j", "status"])
    assert result.exit_code == 0, result.output
    assert "reachable" in result.output


def test_port_conflict_is_reported(tmp_path: Path, neo4j_target) -> None:
    port = int(neo4j_target.uri.rsplit(":", 1)[1])
    server = LocalNeo4j(LocalServerConfig(home=tmp_path / "n3", cache=cache_dir(),
                                          bolt_port=port))
    with pytest.raises(Neo4jServerError, match=r"port \d+ is taken"):
        server.start(timeout=10)


def test_memory_limits_follow_the_heap() -> None:
    assert memory_limits("1g") == ("256m", "614m")
    assert memory_limits("2048m") == ("512m", "1228m")
    assert memory_limits("1048576k") == ("256m", "614m")
    assert memory_limits("128m") == ("64m", "76m")


def test_config_is_locked_down(tmp_path: Path) -> None:
    """What the written configuration allows: the listed plugin functions only, no file or URL
    for LOAD CSV, a memory limit per transaction, a JVM that outlives an OutOfMemoryError (the
    running server's behaviour is in tests/graphql_api/test_cypher_policy.py)."""
    server = LocalNeo4j(LocalServerConfig(home=tmp_path / "n4", cache=cache_dir(), heap="2g"))
    server.write_config()
    conf = (server.home / "conf" / "neo4j.conf").read_text().splitlines()
    assert f"dbms.security.procedures.allowlist={','.join(PLUGIN_ALLOWLIST)}" in conf
    assert not any("unrestricted" in line or "apoc.*" in line for line in conf)
    assert "dbms.security.allow_csv_import_from_file_urls=false" in conf
    assert "internal.dbms.cypher_ip_blocklist=0.0.0.0/0,::/0" in conf
    assert {"db.memory.transaction.max=512m", "dbms.memory.transaction.total.max=1228m"} <= set(
        conf)
    assert not any("ExitOnOutOfMemoryError" in line for line in [*conf, *JVM_FLAGS])
    assert "apoc.import.file.enabled=false" in (server.home / "conf" / "apoc.conf").read_text()
