"""Which dataset version a neuPrint request names, and the `/api/dbmeta/datasets` listing.

neuPrint names a dataset `hemibrain` or, pinned to a release, `hemibrain:v1.2.1`. Ours: `NAME`
is the current version, `NAME:vN` (or `NAME@vN`) version N, which stays readable until deleted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import neo4j

from connectome_query.graphdb import catalog
from connectome_query.graphdb.dataset_scope import SCOPED
from connectome_query.graphql_api.db import read
from connectome_query.graphql_api.errors import QueryError
from connectome_query.schema.model import DATASET_NAME, META

_PINNED = re.compile(r"^(?P<name>[^:@]+)[:@]v(?P<version>\d{1,9})$")

VERSIONS = f"""
MATCH (m:{META}) WHERE m.status = 'complete'
RETURN {catalog.VERSION_FIELDS}, coalesce(m.{SCOPED}, false) AS scoped,
       coalesce(m.primaryRois, []) AS rois, coalesce(m.superLevelRois, []) AS superRois,
       m.uuid AS uuid, toString(m.lastDatabaseEdit) AS edited,
       coalesce(m.description, '') AS info
ORDER BY name, version
"""


class UnknownVersion(QueryError):
    """The request names no dataset version the graph holds (or one the caller may not read)."""

    code = "unknown_dataset"


class NotScoped(QueryError):
    """The version was loaded before versions carried their own labels."""

    code = "dataset_not_prepared"


@dataclass(frozen=True)
class Requested:
    """A dataset as a request names it: name and, when pinned, version."""

    name: str
    version: int | None

    @classmethod
    def parse(cls, text: Any) -> Requested:
        if not isinstance(text, str) or not text:
            raise QueryError(f"invalid dataset name {text!r}: give NAME, or NAME:vN for "
                             "version N")
        pinned = _PINNED.match(text)
        name, version = ((pinned.group("name"), int(pinned.group("version"))) if pinned
                         else (text, None))
        if not DATASET_NAME.match(name):
            raise QueryError(f"invalid dataset name {text!r}: NAME or NAME:vN")
        return cls(name, version)


async def resolve(driver: neo4j.AsyncDriver, wanted: Requested,
                  database: str) -> dict[str, Any]:
    """The version's row (key, name, version, scoped, ...); UnknownVersion when absent."""
    rows = await read(driver, VERSIONS, {}, database=database)
    for row in rows:
        if row["name"] != wanted.name:
            continue
        if (row["version"] == wanted.version) if wanted.version is not None else row["current"]:
            if not row["scoped"]:
                raise NotScoped(f"{row['key']} was loaded before datasets carried their own "
                                "labels; load any dataset again (or run `connectome "
                                "datasets-upgrade`) to prepare it")
            return row
    raise UnknownVersion(f"unknown dataset {wanted.name!r}"
                         + (f" version {wanted.version}" if wanted.version is not None else "")
                         + ", or these credentials may not read it")


def listing(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """`/api/dbmeta/datasets`: each current dataset by name, every version as `NAME:vN`."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = {"uuid": row["uuid"] or "", "last-mod": row["edited"] or row["created"] or "",
                 "ROIs": list(row["rois"]), "superLevelROIs": list(row["superRois"]),
                 "info": row["info"], "logo": "", "hidden": False,
                 "version": row["version"], "current": bool(row["current"])}
        if row["current"]:
            out[row["name"]] = entry
        out[f"{row['name']}:v{row['version']}"] = entry
    return out
