"""What every resolver checks before it reads a dataset: a well-formed name, the caller's right
to read it (`auth.can_read`, the one authorisation decision) and that it exists."""

from __future__ import annotations

from strawberry.types import Info

from connectome_query.graphdb import catalog
from connectome_query.graphql_api.auth import require_read
from connectome_query.graphql_api.context import ApiContext
from connectome_query.graphql_api.errors import QueryError
from connectome_query.schema.model import DATASET_NAME


def check_dataset(name: str) -> str:
    """`name` if it is a well-formed dataset name, else QueryError."""
    if not DATASET_NAME.match(name):
        raise QueryError(f"invalid dataset name {name!r}", code="invalid_dataset")
    return name


async def require_dataset(info: Info[ApiContext, None], name: str,
                          version: int | None = None) -> str:
    """The key of dataset `name`'s current version (or of `version`), once `name` is known to be
    well-formed, readable by the caller and in the graph. Queries filter on the key."""
    check_dataset(name)
    await require_read(info, name)
    rows = await info.context.read(catalog.RESOLVE, {"name": name, "version": version})
    if not rows:
        raise QueryError(str(catalog.unknown(name, version)), code="unknown_dataset")
    return str(rows[0]["key"])
