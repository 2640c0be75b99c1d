"""`CALL apoc.cypher.runTimeboxed("<query>", {}, ms) YIELD value RETURN value.x AS x, ...`.

neuprint-python wraps some queries this way. Nested Cypher never reaches the server (APOC's
`apoc.cypher.*` is not loaded): this module recognises exactly that form, takes the inner
query out of its string literal and hands it back to be checked and run like any other query,
under the shorter of the two time limits. As APOC does, a query that runs out of time answers no
rows. Any other use of `runTimeboxed` is left in the text, where the plan check refuses it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FORM = re.compile(
    r"""^\s*CALL\s+apoc\.cypher\.runTimeboxed\s*\(\s*
        "(?P<inner>(?:[^"\\]|\\.)*)"\s*,\s*\{\s*\}\s*,\s*(?P<ms>\d{1,9})\s*\)\s*
        YIELD\s+value\s+RETURN\s+(?P<items>.+?)\s*;?\s*$""",
    re.VERBOSE | re.DOTALL | re.IGNORECASE)
_ITEM = re.compile(r"^\s*value\.(?P<field>[^\W\d]\w*)\s+AS\s+(?P<alias>[^\W\d]\w*)\s*$",
                   re.IGNORECASE)
_ESCAPE = re.compile(r"\\([\"'\\])")


@dataclass(frozen=True)
class Timeboxed:
    """The query inside, its time limit, and which of its columns the outer query returns."""

    inner: str
    seconds: float
    columns: tuple[tuple[str, str], ...]
    """(field of the inner row, name returned), in order."""


def parse(cypher: str) -> Timeboxed | None:
    """The parts of a `runTimeboxed` query, or None when `cypher` is not exactly that form."""
    match = _FORM.match(cypher)
    if match is None:
        return None
    columns = []
    for item in match.group("items").split(","):
        found = _ITEM.match(item)
        if found is None:
            return None
        columns.append((found.group("field"), found.group("alias")))
    inner = _ESCAPE.sub(lambda m: m.group(1), match.group("inner"))
    return Timeboxed(inner=inner, seconds=int(match.group("ms")) / 1000.0,
                     columns=tuple(columns))
