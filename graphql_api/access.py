"""What every resolver checks before it reads a dataset: a well-formed name, the caller's right
to read it (`auth.can_read`, the one authorisation decision) and that it exists."""

from __future__ import annotations

from strawberry.types import Info

from connectome_query.graphql_api.auth import require_read
from connectome_query.graphql_api.context import ApiContext
from connectome_query.graphql_api.errors import QueryError
from connectome_query.schema.model import DATASET_NAME


def check_dataset(name: str) -> str:
    """`name` if it is a well-formed dataset name, else QueryError."""
    if not DATASET_NAME.match(name):
        raise QueryError(f"invalid dataset name {name!r}")
    return name


async def require_dataset(info: Info[ApiContext, None], name: str) -> str:
    """`name`, once it is known to be well-formed, readable by the caller and in the graph."""
    check_dataset(name)
    await require_read(info, name)
    if name not in await info.context.dataset_names():
        raise QueryError(f"unknown dataset {name!r}")
    return name
