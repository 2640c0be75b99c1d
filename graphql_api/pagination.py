"""Pages of the API: page-size limits, opaque cursors and `PageInfo`, the same for every field.

Every list that pages does it by keyset: the cursor holds the sort key of the last item (a
bodyId, a pair of them, or one per motif node), so the next page is a range seek, never a SKIP.
Cursors are `base64("<kind>:<id>:<id>...")`; a cursor of another kind is refused.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import strawberry

from connectome_query.graphql_api.errors import QueryError

MAX_PAGE = 1000
"""Most items one page (`first`) may hold."""

T = TypeVar("T")


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


def check_page(first: int, name: str = "first", maximum: int = MAX_PAGE) -> int:
    """`first` (or another size argument) if it is between 1 and `maximum`, else QueryError."""
    if not 1 <= first <= maximum:
        raise QueryError(f"{name} must be between 1 and {maximum}, got {first}")
    return first


def at_least(value: int, name: str, minimum: int) -> int:
    """`value` if it is at least `minimum`, else QueryError naming the argument."""
    if value < minimum:
        raise QueryError(f"{name} must be >= {minimum}, got {value}")
    return value


def encode_cursor(kind: str, *ids: int) -> str:
    """The cursor after an item whose sort key is `ids`."""
    return base64.urlsafe_b64encode(":".join([kind, *map(str, ids)]).encode()).decode()


def decode_cursor(cursor: str | None, kind: str, n: int) -> list[int] | None:
    """The `n` ids in a cursor of `kind` (None for no cursor); QueryError for any other."""
    if cursor is None:
        return None
    try:
        parts = base64.urlsafe_b64decode(cursor.encode()).decode().split(":")
        if parts[0] != kind or len(parts) != n + 1:
            raise ValueError
        return [int(p) for p in parts[1:]]
    except (ValueError, UnicodeDecodeError):
        raise QueryError(f"invalid cursor {cursor!r}") from None


def keyset_page(rows: Sequence[dict[str, Any]], first: int, kind: str,
                convert: Callable[[dict[str, Any]], T],
                key: Callable[[T], Sequence[int]]) -> tuple[list[T], PageInfo]:
    """The items of a page read with `LIMIT first + 1`, and its PageInfo: a row past `first`
    means another page; the end cursor holds the last item's `key` (none on an empty page)."""
    items = [convert(r) for r in rows[:first]]
    cursor = encode_cursor(kind, *key(items[-1])) if items else None
    return items, PageInfo(has_next_page=len(rows) > first, end_cursor=cursor)
