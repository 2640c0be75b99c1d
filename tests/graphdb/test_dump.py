"""`connectome neo4j dump` / `load`: a dump of a project server loads into a fresh one with the
same graph. Uses two extra small instances; the session's shared server is never stopped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import neo4j
import pytest
from typer.testing import CliRunner

from connectome_query.cli.main import app
from connectome_query.graphdb.local_server import LocalNeo4j, Neo4jServerError
from connectome_query.graphdb.settings import LocalServerConfig, cache_dir
from tests.support.bloom import make_synthetic
from tests.support.net import free_port

pytestmark = [pytest.mark.neo4j, pytest.mark.slow]

COUNTS = """
CALL () { MATCH (n) UNWIND labels(n) AS l RETURN 'label:' + l AS k, count(*) AS c
          UNION ALL
          MATCH ()-[r]->() RETURN 'type:' + type(r) AS k, count(*) AS c
          UNION ALL
          MATCH (n) RETURN 'nodes' AS k, count(n) AS c
          UNION ALL
          MATCH ()-[r]->() RETURN 'rels' AS k, count(r) AS c
          UNION ALL
          MATCH ()-[r:ConnectsTo|GapJunction]->() RETURN 'weight' AS k, sum(r.weight) AS c }
RETURN k, sum(c) AS c
"""


def counts(server: LocalNeo4j) -> dict[str, int]:
    t = server.target()
    with neo4j.GraphDatabase.driver(t.uri, auth=(t.user, t.password)) as drv:
        records, _, _ = drv.execute_query(COUNTS)
    return {r["k"]: r["c"] for r in records}


def instance(tmp: Path, name: str) -> LocalNeo4j:
    return LocalNeo4j(LocalServerConfig(home=tmp / name, cache=cache_dir(), bolt_port=free_port(),
                                        heap="512m", pagecache="64m"))


@pytest.fixture
def servers(tmp_path: Path, neo4j_server: LocalNeo4j | None) -> Iterator[list[LocalNeo4j]]:
    if neo4j_server is None:
        pytest.skip("needs the project's own servers (NEO4J_URI is set)")
    made: list[LocalNeo4j] = []
    yield made
    for s in made:
        s.stop()


def use_local(monkeypatch: pytest.MonkeyPatch, server: LocalNeo4j) -> None:
    """Point the CLI at `server` instead of the session's NEO4J_URI."""
    for key in ("NEO4J_URI", "NEO4J_USER", "NEO4J_USERNAME", "NEO4J_PASSWORD"):
        monkeypatch.delenv(key, raising=False)
    c = server.config
    monkeypatch.setenv("CONNECTOME_NEO4J_HOME", str(c.home))
    monkeypatch.setenv("CONNECTOME_NEO4J_BOLT_PORT", str(c.bolt_port))
    monkeypatch.setenv("CONNECTOME_NEO4J_HEAP", c.heap)
    monkeypatch.setenv("CONNECTOME_NEO4J_PAGECACHE", c.pagecache)
    monkeypatch.setenv("CONNECTOME_CACHE", str(c.cache))


def test_dump_loads_into_a_fresh_server(tmp_path: Path, servers: list[LocalNeo4j],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from connectome_query.ingest.loader import load
    from connectome_query.ingest.sources import read_source

    src = instance(tmp_path, "src")
    with pytest.raises(Neo4jServerError, match="no such dump file"):
        src.load_dump(tmp_path / "missing.dump")
    servers.append(src)
    t = src.start(timeout=240)
    syn, neurons = make_synthetic(tmp_path / "syn", seed=3)
    with neo4j.GraphDatabase.driver(t.uri, auth=(t.user, t.password)) as drv:
        load(drv, read_source(str(syn), neurons=neurons), "t_dump_syn")
    before = counts(src)
    assert before["label:Synapse"] > 0 and before["type:ConnectsTo"] > 0
    # Community cannot dump or load a database that is online.
    with pytest.raises(Neo4jServerError, match="stop the server"):
        src.dump(tmp_path / "d")
    with pytest.raises(Neo4jServerError, match="stop the server"):
        src.load_dump(Path(__file__))

    runner = CliRunner()
    use_local(monkeypatch, src)
    out = tmp_path / "out" / "connectome.dump"
    result = runner.invoke(app, ["neo4j", "dump", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file() and out.stat().st_size > 0
    assert not list(out.parent.glob(".*partial*"))
    assert src.status().running  # it ran before the dump, so it runs again
    assert counts(src) == before

    dst = instance(tmp_path, "dst")  # never started: the dump is its first database
    servers.append(dst)
    use_local(monkeypatch, dst)
    result = runner.invoke(app, ["neo4j", "load", str(out)])
    assert result.exit_code == 0, result.output
    assert not dst.status().running
    dst.start(timeout=240)
    assert counts(dst) == before


def test_cli_dump_refuses_external_server(neo4j_target: object) -> None:
    for args in (["neo4j", "dump"], ["neo4j", "load", "x.dump"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 1 and "NEO4J_URI" in result.output
