"""Datasets and their versions: every load writes a new version beside the old ones.

A version's nodes and relationships carry its key (`name@vN`, see `schema.model`) in their
`dataset` property, so versions never mix and a query for one sees nothing of another. Its `Meta`
node holds the name, the version number, when it was loaded, its status (`loading`, `complete`)
and whether it is the current one. A load becomes current in one transaction at its very end, so
readers see the previous version, whole, until then; a load that fails or is killed never
becomes current.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any

import neo4j

from connectome_query.graphdb import summary
from connectome_query.graphdb.dataset_scope import scoped_index_names
from connectome_query.schema.model import (
    COMPLETE,
    LOADING,
    META,
    POST_SYN,
    SYNAPSE_SET,
    check_dataset_name,
    is_current,
    scope_label,
)

VERSION_FIELDS = f"""m.dataset AS key, coalesce(m.name, m.dataset) AS name,
    coalesce(m.version, 1) AS version, m.status AS status, {is_current('m')} AS current,
    toString(m.createdAt) AS created, coalesce(m.neuronCount, 0) AS neurons,
    coalesce(m.chemicalSynapses, 0) AS chemicalSynapses, coalesce(m.gapJunctions, 0) AS gap"""

RESOLVE = f"""
MATCH (m:{META})
WHERE coalesce(m.name, m.dataset) = $name
  AND CASE WHEN $version IS NULL THEN {is_current('m')}
           ELSE coalesce(m.version, 1) = $version AND m.status = '{COMPLETE}' END
RETURN {VERSION_FIELDS}
"""
"""The current version of `$name`, or version `$version` of it (complete versions only)."""

LIST = f"""
MATCH (m:{META})
WHERE $name IS NULL OR coalesce(m.name, m.dataset) = $name
RETURN {VERSION_FIELDS}
ORDER BY name, version
"""

LIST_ONE = f"""
MATCH (m:{META} {{dataset: $key}})
RETURN {VERSION_FIELDS}
"""

PUBLIC = f"""
MATCH (m:{META}) WHERE {is_current('m')} AND m.public = true
RETURN coalesce(m.name, m.dataset) AS d
"""
"""Datasets readable without a token (their current version says `public`)."""


class UnknownDataset(LookupError):
    """No dataset (or no such version of it) in the graph."""


@dataclass(frozen=True)
class DatasetVersion:
    """One load of a dataset."""

    key: str
    """The `dataset` property of every node and relationship of this version."""
    name: str
    version: int
    status: str | None
    current: bool
    created: str | None
    neurons: int = 0
    chemical_synapses: int = 0
    gap_junctions: int = 0

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> DatasetVersion:
        return cls(key=record["key"], name=record["name"], version=int(record["version"]),
                   status=record["status"], current=bool(record["current"]),
                   created=record["created"], neurons=int(record.get("neurons") or 0),
                   chemical_synapses=int(record.get("chemicalSynapses") or 0),
                   gap_junctions=int(record.get("gap") or 0))


def unknown(name: str, version: int | None) -> UnknownDataset:
    """The error for a name (and version) the graph does not hold."""
    if version is None:
        return UnknownDataset(f"unknown dataset {name!r}")
    return UnknownDataset(f"dataset {name!r} has no complete version {version}")


def resolve(driver: neo4j.Driver, name: str, version: int | None = None,
            database: str = "neo4j") -> DatasetVersion:
    """The current version of `name` (or version `version`); UnknownDataset if absent."""
    records, _, _ = driver.execute_query(RESOLVE, name=name, version=version,
                                         database_=database,
                                         routing_=neo4j.RoutingControl.READ)
    if not records:
        raise unknown(name, version)
    return DatasetVersion.from_record(records[0].data())


def list_versions(driver: neo4j.Driver, name: str | None = None,
                  database: str = "neo4j") -> list[DatasetVersion]:
    """Every version of every dataset (or of `name`), by name and version."""
    records, _, _ = driver.execute_query(LIST, name=name, database_=database,
                                         routing_=neo4j.RoutingControl.READ)
    return [DatasetVersion.from_record(r.data()) for r in records]


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def begin_version(driver: neo4j.Driver, name: str, database: str = "neo4j",
                  attempts: int = 5) -> DatasetVersion:
    """Open the next version of `name` for writing: a `Meta` node with status `loading`.

    Two loads at once may pick the same number; the uniqueness of `Meta.dataset` refuses the
    second, which takes the next number."""
    check_dataset_name(name)
    for _ in range(attempts):
        try:
            records, _, _ = driver.execute_query(
                f"""OPTIONAL MATCH (m:{META}) WHERE coalesce(m.name, m.dataset) = $name
                    WITH coalesce(max(CASE WHEN m IS NULL THEN 0
                                           ELSE coalesce(m.version, 1) END), 0) + 1 AS version
                    CREATE (m:{META} {{dataset: $name + '@v' + toString(version), name: $name,
                                      version: version, status: '{LOADING}', current: false,
                                      createdAt: datetime(), owner: $owner,
                                      heartbeat: datetime()}})
                    RETURN {VERSION_FIELDS}""",
                name=name, owner=_owner(), database_=database)
        except neo4j.exceptions.ConstraintError:
            continue
        return DatasetVersion.from_record(records[0].data())
    raise RuntimeError(f"could not open a new version of {name!r}: {attempts} concurrent loads "
                       "took the numbers first")


def publish(driver: neo4j.Driver, version: DatasetVersion, meta: dict[str, Any],
            database: str = "neo4j") -> None:
    """Make `version` complete and current, in one transaction, with `meta` as its metadata,
    after keeping its summary (`summary.keep`: the totals its dataset page reads).

    The metadata replaces whatever the Meta node held (nothing is merged from earlier loads);
    only the dataset's access setting (`public`) carries over from the version it replaces."""

    def work(tx: neo4j.ManagedTransaction) -> None:
        previous = tx.run(
            f"""MATCH (old:{META}) WHERE coalesce(old.name, old.dataset) = $name
                AND old.dataset <> $key
                WITH old, {is_current('old')} AS was_current
                SET old.current = false
                RETURN collect(CASE WHEN was_current THEN old.public END) AS public""",
            name=version.name, key=version.key).single()
        carried = {"public": previous["public"][0]} if previous and previous["public"] else {}
        found = tx.run(
            f"""MATCH (m:{META} {{dataset: $key}})
                WITH m, m.createdAt AS created
                SET m = $meta
                SET m.dataset = $key, m.name = $name, m.version = $version,
                    m.createdAt = created, m.status = '{COMPLETE}', m.current = true,
                    m.lastDatabaseEdit = datetime()
                RETURN count(m) AS n""",
            key=version.key, name=version.name, version=version.version,
            meta={**meta, **carried}).single()
        if found is None or found["n"] != 1:
            raise UnknownDataset(f"version {version.key} vanished before it was published")

    summary.keep(driver, version.key, database)
    with driver.session(database=database) as session:
        session.execute_write(work)


def set_public(driver: neo4j.Driver, name: str, public: bool,
               database: str = "neo4j") -> bool:
    """Make dataset `name` readable without a token (or not again), every version of it; False
    when the graph holds no such dataset."""
    records, _, _ = driver.execute_query(
        f"""MATCH (m:{META}) WHERE coalesce(m.name, m.dataset) = $name
            SET m.public = $public RETURN count(m) AS n""",
        name=name, public=public, database_=database)
    return bool(records[0]["n"])


def heartbeat(driver: neo4j.Driver, version: DatasetVersion, database: str = "neo4j") -> None:
    """Record that the load writing `version` is alive (see `sweep_abandoned`)."""
    driver.execute_query(f"MATCH (m:{META} {{dataset: $key}}) SET m.heartbeat = datetime()",
                         key=version.key, database_=database)


def _version_only(key: str) -> tuple[str, ...]:
    """Nodes that carry only the version's labels: neuPrint's postsynaptic side."""
    return tuple(f"""MATCH (p:`{scope_label(key, label)}`)
       CALL (p) {{ DETACH DELETE p }} IN TRANSACTIONS OF 10000 ROWS"""
                 for label in (POST_SYN, SYNAPSE_SET))


DELETE_VERSION = (
    """MATCH (s:Synapse {dataset: $key})
       CALL (s) { DETACH DELETE s } IN TRANSACTIONS OF 10000 ROWS""",
    """MATCH (s:SynapseSet {dataset: $key})
       CALL (s) { DETACH DELETE s } IN TRANSACTIONS OF 10000 ROWS""",
    """MATCH (n:Neuron {dataset: $key})-[r]-()
       CALL (r) { DELETE r } IN TRANSACTIONS OF 10000 ROWS""",
    """MATCH (n {dataset: $key}) WHERE NOT n:Meta
       CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS""",
    f"""MATCH (m:{META} {{dataset: $key}}) DETACH DELETE m""",
)
"""Deleting one version, in bounded transactions; the Meta node goes last, so an interrupted
delete can be run again."""


def delete_version(driver: neo4j.Driver, version: DatasetVersion,
                   database: str = "neo4j") -> None:
    """Remove every node and relationship of `version` (never the current one: publish another
    version first, or delete the dataset's versions from the oldest)."""
    if version.current:
        raise ValueError(f"{version.name} version {version.version} is the current version; "
                         "load a newer one before deleting it")
    with driver.session(database=database) as session:
        for statement in (*_version_only(version.key), *DELETE_VERSION):
            session.run(statement, key=version.key).consume()
        for name in scoped_index_names(version.key):
            session.run(f"DROP INDEX `{name}` IF EXISTS").consume()


def retire_current(driver: neo4j.Driver, version: DatasetVersion,
                   database: str = "neo4j") -> DatasetVersion | None:
    """Make the newest other complete version of `version`'s dataset current instead of
    `version`, in one transaction, so that `version` can be deleted; the version now current
    (None: the dataset has no other). UnknownDataset if `version` is not current any more."""
    def work(tx: neo4j.ManagedTransaction) -> tuple[int, str | None]:
        record = tx.run(
            f"""MATCH (m:{META} {{dataset: $key}}) WHERE {is_current('m')}
                SET m.current = false
                WITH m
                OPTIONAL MATCH (o:{META})
                WHERE coalesce(o.name, o.dataset) = $name AND o.dataset <> $key
                  AND o.status = '{COMPLETE}'
                WITH m, o ORDER BY coalesce(o.version, 1) DESC LIMIT 1
                FOREACH (x IN CASE WHEN o IS NULL THEN [] ELSE [o] END |
                         SET x.current = true)
                RETURN count(m) AS n, o.dataset AS next""",
            key=version.key, name=version.name).single()
        return (0, None) if record is None else (int(record["n"]), record["next"])

    with driver.session(database=database) as session:
        found, following = session.execute_write(work)
    if not found:
        raise UnknownDataset(f"{version.name} version {version.version} is not the current "
                             "version any more")
    if following is None:
        return None
    records, _, _ = driver.execute_query(f"{LIST_ONE}", key=following, database_=database)
    return DatasetVersion.from_record(records[0].data())


def sweep_abandoned(driver: neo4j.Driver, name: str, stale_after_s: float = 600.0,
                    database: str = "neo4j") -> list[DatasetVersion]:
    """Delete the versions of `name` whose load died: status `loading` and either its owner
    process is gone (same host) or no heartbeat for `stale_after_s` seconds."""
    records, _, _ = driver.execute_query(
        f"""MATCH (m:{META} {{name: $name, status: '{LOADING}'}})
            RETURN {VERSION_FIELDS}, m.owner AS owner,
                   duration.inSeconds(m.heartbeat, datetime()).seconds AS quiet""",
        name=name, database_=database)
    swept = []
    host = socket.gethostname()
    for record in records:
        owner_host, _, pid = str(record["owner"] or "").rpartition(":")
        dead = owner_host == host and pid.isdigit() and not process_alive(int(pid))
        if dead or (record["quiet"] or 0) > stale_after_s:
            version = DatasetVersion.from_record(record.data())
            delete_version(driver, version, database)
            swept.append(version)
    return swept


def process_alive(pid: int) -> bool:
    """Whether process `pid` runs on this host (a process we may not signal counts as running)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
