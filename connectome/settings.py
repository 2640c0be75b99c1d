"""Where things live and which Neo4j server every command talks to.

One place reads the environment. With `NEO4J_URI` set (plus `NEO4J_USER`/`NEO4J_USERNAME` and
`NEO4J_PASSWORD`), every command uses that server: Docker, Neo4j Desktop or Aura. Without it, the
project's own local server (started by `connectome neo4j start`) is the embedded default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

NEO4J_VERSION = "5.26.19"
"""Neo4j community release fetched from Maven Central (5.26 is the LTS line on Java 17)."""

APOC_VERSION = "5.26.19"
"""APOC core release matching `NEO4J_VERSION`."""


@dataclass(frozen=True)
class Neo4jTarget:
    """How to reach a Neo4j server over Bolt."""

    uri: str
    user: str
    password: str
    database: str = "neo4j"
    managed: bool = False
    """True when this is the project's own local server (we may start and stop it)."""


@dataclass(frozen=True)
class LocalServerConfig:
    """Settings of the project-managed local Neo4j server."""

    home: Path
    """Instance directory: conf/, data/, logs/, run/ and the generated password."""
    cache: Path
    """Directory holding the fetched Neo4j and APOC jars, shared by all instances."""
    bolt_port: int = 7687
    heap: str = "2g"
    pagecache: str = "2g"
    tx_timeout: str = "120s"


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def cache_dir() -> Path:
    """Cache outside the repository for downloaded artifacts (`CONNECTOME_CACHE`)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(_env("CONNECTOME_CACHE", str(Path(base) / "connectome-query")))


def local_server_config() -> LocalServerConfig:
    """The local server's settings, from `CONNECTOME_NEO4J_*` variables or defaults.

    Defaults fit a 2-core, 24 GiB machine: 2 GiB heap and 2 GiB page cache.
    """
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return LocalServerConfig(
        home=Path(_env("CONNECTOME_NEO4J_HOME", str(Path(data) / "connectome-query" / "neo4j"))),
        cache=cache_dir(),
        bolt_port=int(_env("CONNECTOME_NEO4J_BOLT_PORT", "7687")),
        heap=_env("CONNECTOME_NEO4J_HEAP", "2g"),
        pagecache=_env("CONNECTOME_NEO4J_PAGECACHE", "2g"),
        tx_timeout=_env("CONNECTOME_NEO4J_TX_TIMEOUT", "120s"),
    )


def external_target() -> Neo4jTarget | None:
    """The server named by `NEO4J_URI`, or None when the local default applies."""
    uri = os.environ.get("NEO4J_URI", "").strip()
    if not uri:
        return None
    user = os.environ.get("NEO4J_USER") or os.environ.get("NEO4J_USERNAME") or "neo4j"
    password = os.environ.get("NEO4J_PASSWORD", "")
    database = _env("NEO4J_DATABASE", "neo4j")
    return Neo4jTarget(uri=uri, user=user, password=password, database=database, managed=False)
