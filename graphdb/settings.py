"""Every setting the product reads from the environment, in one place (pydantic-settings).

With `NEO4J_URI` set (plus `NEO4J_USER`/`NEO4J_USERNAME` and `NEO4J_PASSWORD`), every command uses
that server: Docker, Neo4j Desktop or Aura. Without it, the project's own local server (started by
`connectome neo4j start`) is the default. The other groups are read where they apply: the local
server (`CONNECTOME_NEO4J_*`), the API (`CONNECTOME_*`), export (`CONNECTOME_EXPORT_*`) and compute
(`CONNECTOME_XP`), the reconstruction engine's Dask cluster (`DASK_SCHEDULER_ADDRESS`,
`CONNECTOME_DASK_*`). A bad value raises `SettingsError` naming the variable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import AliasChoices, Field, StringConstraints, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

NEO4J_VERSION = "5.26.19"
"""Neo4j community release fetched from Maven Central (5.26 is the LTS line on Java 17)."""

APOC_VERSION = "5.26.19"
"""APOC core release matching `NEO4J_VERSION`."""


class SettingsError(ValueError):
    """An environment variable holds a value the product cannot use."""


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


def _config(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, env_ignore_empty=True, extra="ignore")


Stripped = Annotated[str, StringConstraints(strip_whitespace=True)]


class Neo4jEnv(BaseSettings):
    """`NEO4J_URI`, `NEO4J_USER` (or `NEO4J_USERNAME`), `NEO4J_PASSWORD`, `NEO4J_DATABASE`."""

    model_config = _config("NEO4J_")
    uri: Stripped = ""
    user: Stripped = Field("neo4j", validation_alias=AliasChoices("NEO4J_USER", "NEO4J_USERNAME"))
    password: str = ""
    database: Stripped = "neo4j"


class PathsEnv(BaseSettings):
    """Where downloads and instance data live (`CONNECTOME_CACHE`, XDG base directories)."""

    model_config = _config("")
    connectome_cache: Path | None = None
    xdg_cache_home: Path | None = None
    xdg_data_home: Path | None = None


class LocalServerEnv(BaseSettings):
    """`CONNECTOME_NEO4J_*`: the local server; defaults fit a 2-core, 24 GiB machine."""

    model_config = _config("CONNECTOME_NEO4J_")
    home: Path | None = None
    bolt_port: int = Field(7687, ge=1, le=65535)
    heap: Stripped = Field("2g", pattern=r"^\d+[kKmMgG]?$")
    pagecache: Stripped = Field("2g", pattern=r"^\d+[kKmMgG]?$")
    tx_timeout: Stripped = Field("120s", pattern=r"^\d+(ms|s|m|h)?$")


class ApiSettings(BaseSettings):
    """`CONNECTOME_*`: authentication, rate limits and request bounds of the API."""

    model_config = _config("CONNECTOME_")
    auth: Literal["off", "required"] = "off"
    """`required`: every request needs a token (see `connectome tokens`)."""
    tokens_file: Path | None = None
    """Token store; default `tokens.json` beside the local Neo4j home."""
    rate_limit: float | None = Field(None, ge=0)
    """Requests per second per token (per address when anonymous); 0 = off; default 20 with
    auth required, off otherwise."""
    rate_burst: int = Field(40, ge=1)
    max_concurrent: int = Field(16, ge=0)
    """Requests served at once; 0 = no cap."""
    query_timeout_s: float = Field(30.0, gt=0)
    """Seconds a GraphQL circuit query may run."""
    cypher_max_rows: int = Field(100_000, ge=1)
    cypher_timeout_s: float = Field(20.0, gt=0)
    cypher_max_bytes: int = Field(16_000_000, ge=1)
    """Bytes of JSON one answer of the read-only Cypher endpoint may hold."""
    max_body_bytes: int = Field(1_000_000, ge=1)
    """Bytes a request body may hold, counted as they arrive (chunked bodies too)."""
    max_concurrent_heavy: int = Field(4, ge=0)
    """Cypher-endpoint and export requests served at once (within `max_concurrent`); 0 = no
    cap of their own."""
    graphql_max_cost: int = Field(50_000, ge=1)
    """Field values one GraphQL answer may hold: each field once per object it is asked on,
    a list's page size (`first`) multiplying what is inside it."""
    graphql_max_bytes: int = Field(32_000_000, ge=1)
    """Bytes one GraphQL answer may hold."""


class ExportSettings(BaseSettings):
    """`CONNECTOME_EXPORT_*`: caps and page sizes of matrix export."""

    model_config = _config("CONNECTOME_EXPORT_")
    max_edges: int = Field(50_000_000, ge=1)
    """Most nonzero entries (rows of an edge list) one export may hold."""
    max_neurons: int = Field(2_000_000, ge=1)
    """Most neurons (matrix rows/columns) one export may select."""
    page_neurons: int = Field(5_000, ge=1)
    """Neurons whose edges one read transaction fetches."""
    inline_edges: int = Field(10_000, ge=1)
    """GraphQL answers inline up to this many entries; beyond it, a download URL."""
    inline_neurons: int = Field(5_000, ge=1)


class ComputeSettings(BaseSettings):
    """`CONNECTOME_XP=numpy` keeps voxel work on the CPU even where CuPy finds a GPU."""

    model_config = _config("CONNECTOME_")
    xp: Literal["auto", "numpy"] = "auto"


class DaskSettings(BaseSettings):
    """Where `connectome reconstruct` runs its blocks (`reconstruct/engine`).

    `DASK_SCHEDULER_ADDRESS` (Dask's own variable, e.g. `tcp://10.0.0.5:8786`) submits to a
    running cluster; without it the command starts a LocalCluster sized to the machine and
    stops it at the end. `CONNECTOME_DASK_WORKERS`, `_THREADS` and `_WORKER_MEMORY` size
    that LocalCluster (defaults: one single-threaded worker per core, memory shared out)."""

    model_config = _config("")
    dask_scheduler_address: Stripped = ""
    connectome_dask_workers: int | None = Field(None, ge=1, le=4096)
    connectome_dask_threads: int = Field(1, ge=1, le=256)
    connectome_dask_worker_memory: Stripped = Field(
        "", pattern=r"^$|^\d+(\.\d+)?\s*([kKmMgGtT]i?[bB]?)?$")
    """Memory limit of each local worker, e.g. `1.5GB`; default: the machine's memory shared
    out among the workers."""


S = TypeVar("S", bound=BaseSettings)


_READ: dict[type[BaseSettings], tuple[tuple[tuple[str, str], ...], BaseSettings]] = {}
"""The last settings read of each kind, with the environment they were read from."""


def from_env(kind: type[S]) -> S:
    """The settings of `kind` as the environment gives them now; SettingsError if one is bad.

    Reading settings costs about a millisecond and the API asks for them on every request, so
    the last answer of each kind is kept while the environment stays exactly the same."""
    environ = tuple(os.environ.items())
    cached = _READ.get(kind)
    if cached is not None and cached[0] == environ:
        return cached[1]  # type: ignore[return-value]
    try:
        settings = kind()
        _READ[kind] = (environ, settings)
        return settings
    except ValidationError as exc:
        prefix = str(kind.model_config.get("env_prefix", ""))
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else ""
            name = field if field.isupper() else (prefix + field).upper()
            problems.append(f"{name}={err.get('input')!r}: {err['msg']}")
        raise SettingsError("; ".join(problems)) from None


def cache_dir() -> Path:
    """Cache outside the repository for downloaded artifacts (`CONNECTOME_CACHE`)."""
    paths = from_env(PathsEnv)
    if paths.connectome_cache is not None:
        return paths.connectome_cache
    return (paths.xdg_cache_home or Path.home() / ".cache") / "connectome-query"


def local_server_config() -> LocalServerConfig:
    """The local server's settings, from `CONNECTOME_NEO4J_*` variables or defaults."""
    env = from_env(LocalServerEnv)
    data = from_env(PathsEnv).xdg_data_home or Path.home() / ".local" / "share"
    return LocalServerConfig(
        home=env.home or data / "connectome-query" / "neo4j", cache=cache_dir(),
        bolt_port=env.bolt_port, heap=env.heap, pagecache=env.pagecache,
        tx_timeout=env.tx_timeout,
    )


def external_target() -> Neo4jTarget | None:
    """The server named by `NEO4J_URI`, or None when the local default applies."""
    env = from_env(Neo4jEnv)
    if not env.uri:
        return None
    return Neo4jTarget(uri=env.uri, user=env.user, password=env.password,
                       database=env.database, managed=False)


class IngestSettings(BaseSettings):
    """`CONNECTOME_INGEST_*`: how ingest streams its input (memory grows with `chunk_rows`)."""

    model_config = _config("CONNECTOME_INGEST_")
    chunk_rows: int = Field(250_000, ge=1_000, le=10_000_000)
    """Rows read, checked and aggregated at a time."""
    spill_rows: int = Field(4_000_000, ge=1)
    """Synapses whose ids and connections are held in memory while checking; beyond it they
    spill to disk."""
    spill_dir: Path | None = None
    """Where large synapse tables spill ids and connections while they are checked (default:
    the system's temporary folder); needs about 40 bytes per synapse, freed at once."""
