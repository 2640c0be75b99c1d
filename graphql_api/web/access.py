"""The one check every page and volume route makes: a well-formed dataset name the caller may
read (`auth.can_read`, as for GraphQL), resolved to its current version's key and Meta.
A dataset the caller may not read answers 404 with the same words as one that does not exist."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import neo4j
from fastapi import HTTPException, Request

from connectome_query.graphdb import catalog
from connectome_query.graphql_api.auth import AuthError, can_read, not_readable
from connectome_query.graphql_api.db import read
from connectome_query.graphql_api.errors import QueryError
from connectome_query.schema.model import DATASET_NAME, META

DriverGetter = Callable[[], neo4j.AsyncDriver]

META_OF = f"MATCH (m:{META} {{dataset: $key}}) RETURN properties(m) AS meta"


@dataclass(frozen=True)
class Dataset:
    name: str
    key: str
    """The current version's key: what the dataset's nodes carry in `dataset`."""
    version: int
    meta: dict[str, Any]


async def readable_dataset(request: Request, driver: neo4j.AsyncDriver, database: str,
                           name: str) -> Dataset:
    """The current version of dataset `name`, if the caller may read it; else HTTPException
    (400 bad name, 401 bad credential, 404 unknown or not readable)."""
    if not DATASET_NAME.match(name):
        raise HTTPException(400, f"invalid dataset name {name!r}")
    try:
        allowed = await can_read(request, name, driver=driver, database=database)
    except AuthError as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None
    if not allowed:
        raise HTTPException(404, str(not_readable(name)))
    try:
        rows = await read(driver, catalog.RESOLVE, {"name": name, "version": None},
                          database=database)
        if not rows:
            raise HTTPException(404, str(not_readable(name)))
        key = str(rows[0]["key"])
        meta = await read(driver, META_OF, {"key": key}, database=database)
    except QueryError as exc:
        raise HTTPException(503, str(exc)) from None
    return Dataset(name=name, key=key, version=int(rows[0]["version"]),
                   meta=dict(meta[0]["meta"]) if meta else {})
