"""Test fixtures: one real Neo4j 5.26 server for the whole session, never a mock.

Without NEO4J_URI, the session starts its own server (the project's `LocalNeo4j`) in a temporary
home on a free port, and stops it at the end. With NEO4J_URI set, tests use that server and only
touch datasets whose names start with `t_` or the C. elegans names below.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import neo4j
import pytest

from connectome_query.graphdb.local_server import LocalNeo4j
from connectome_query.graphdb.settings import (
    LocalServerConfig,
    Neo4jTarget,
    cache_dir,
    external_target,
)
from tests.support.net import free_port


@pytest.fixture(scope="session")
def neo4j_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNeo4j | None]:
    """The session's own server (None when tests run against NEO4J_URI).

    Its address is exported as NEO4J_URI/USER/PASSWORD so CLI calls in tests use it.
    """
    if external_target() is not None:
        yield None
        return
    home = tmp_path_factory.mktemp("neo4j-home")
    config = LocalServerConfig(
        home=home, cache=cache_dir(), bolt_port=free_port(),
        heap=os.environ.get("CONNECTOME_TEST_NEO4J_HEAP", "1g"), pagecache="512m",
    )
    server = LocalNeo4j(config)
    target = server.start(timeout=240)
    saved = {k: os.environ.get(k) for k in ("NEO4J_URI", "NEO4J_USER", "NEO4J_PASSWORD")}
    os.environ.update(
        {"NEO4J_URI": target.uri, "NEO4J_USER": target.user, "NEO4J_PASSWORD": target.password}
    )
    try:
        yield server
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()


@pytest.fixture(scope="session")
def neo4j_target(neo4j_server: LocalNeo4j | None) -> Neo4jTarget:
    """How to reach the session's server."""
    if neo4j_server is not None:
        return neo4j_server.target()
    external = external_target()
    assert external is not None
    return external


@pytest.fixture(scope="session")
def driver(neo4j_target: Neo4jTarget) -> Iterator[neo4j.Driver]:
    with neo4j.GraphDatabase.driver(
        neo4j_target.uri, auth=(neo4j_target.user, neo4j_target.password),
        notifications_min_severity="OFF",
    ) as drv:
        yield drv


@pytest.fixture(scope="session")
def celegans(driver: neo4j.Driver) -> dict[str, object]:
    """Cook 2019 and Varshney 2011 loaded once through the real loader."""
    from connectome_query.ingest.loader import load
    from connectome_query.ingest.sources import read_source

    reports = {}
    for name in ("cook2019", "varshney2011"):
        reports[name] = load(driver, read_source(name), name)
    return reports


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's headless Chromium under Playwright, shared by the session (tests/support/browser:
    a skip without Chromium unless CONNECTOME_REQUIRE_BROWSER=1)."""
    from tests.support.browser import launch

    with launch() as b:
        yield b
