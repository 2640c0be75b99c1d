"""Whether a query only reads, decided from what Neo4j itself parsed: its `EXPLAIN` plan.

Each operator of the plan must be a read operator (`cypher_allowlist.READ_OPERATORS`) running on
the session's database; each `ProcedureCall` must name an allowed procedure; each function the
operators' details call must be allowed. The details are Neo4j's own rendering of the parsed
query: comments are gone, backticks and `\\uXXXX` escapes are resolved, literals are
parameters. So spelling (`apoc` in backticks, split by a comment, escaped) changes nothing, and a
word inside a string or an alias (`'set'`, `AS start`) is never mistaken for a clause.

A name counts as a function call when `(` follows it. It is refused when it is not on the
allowlist and either the server knows a function by that name (`SHOW FUNCTIONS`) or it lies in a
namespace refused outright (`DENIED_NAMESPACES`); anything else before a parenthesis (a keyword,
a label in an index description) calls nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from connectome_query.graphql_api.cypher_allowlist import FUNCTIONS, PROCEDURES, READ_OPERATORS

DENIED_NAMESPACES = ("apoc.", "db.", "dbms.", "gds.", "tx.", "graph.", "genai.")
"""Functions under these prefixes are refused unless allowlisted, whether or not the server
reports them (a function the plan calls but `SHOW FUNCTIONS` missed still cannot pass)."""

METADATA_ARGS = frozenset({
    "planner", "planner-impl", "planner-version", "runtime", "runtime-impl", "runtime-version",
    "version", "string-representation", "Id", "EstimatedRows", "PipelineInfo", "batch-size",
})
"""Operator arguments that describe the planner, not the query."""

_TOKEN = re.compile(r"""
    (?P<quoted>`(?:[^`]|``)*`)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<param>\$(?:`(?:[^`]|``)*`|\w+))
  | (?P<name>[^\W\d]\w*)
  | (?P<number>\d[\w.]*)
  | (?P<space>\s+)
  | (?P<other>.)
""", re.VERBOSE | re.DOTALL)


class PlanRefused(Exception):
    """The plan does something the read-only endpoint does not allow (the message says what)."""


@dataclass(frozen=True)
class Call:
    """A name followed by `(` in an operator's details."""

    name: str
    operator: str


def _tokens(text: str) -> Iterator[tuple[str, str]]:
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup or "other"
        value = match.group()
        if kind == "quoted":
            yield "name", value[1:-1].replace("``", "`")
        elif kind != "space":
            yield kind, value


def calls(text: str) -> list[str]:
    """Dotted names followed by `(` in `text` (`apoc.map.removeKeys(m, $k)` -> that name)."""
    found: list[str] = []
    parts: list[str] = []
    dotted = False
    for kind, value in _tokens(text):
        if kind == "name" and (not parts or dotted):
            parts.append(value)
            dotted = False
        elif kind == "other" and value == "." and parts and not dotted:
            dotted = True
        else:
            if kind == "other" and value == "(" and parts and not dotted:
                found.append(".".join(parts))
            parts, dotted = ([value], False) if kind == "name" else ([], False)
    return found


def _operators(plan: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    stack = [plan]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.get("children") or ())


def _texts(args: Mapping[str, Any]) -> Iterator[str]:
    for key, value in args.items():
        if key in METADATA_ARGS:
            continue
        if isinstance(value, str):
            yield value
        elif isinstance(value, list | tuple):
            yield from (str(v) for v in value)


def function_allowed(name: str, known: frozenset[str]) -> bool:
    """Whether a call of `name` may run: allowlisted, or not a function at all (a keyword or a
    label before a parenthesis) and in no refused namespace. `known`: the server's functions,
    lower-cased."""
    lower = name.lower()
    if lower in FUNCTIONS:
        return True
    return lower not in known and not lower.startswith(DENIED_NAMESPACES)


def check_plan(plan: Mapping[str, Any], database: str, known_functions: frozenset[str]) -> None:
    """PlanRefused unless every operator reads `database` and calls only allowed procedures and
    functions. `plan` is the driver's `ResultSummary.plan` of `EXPLAIN <query>`."""
    for node in _operators(plan):
        op_type = str(node.get("operatorType", ""))
        operator, _, where = op_type.partition("@")
        if where and where != database:
            raise PlanRefused(f"the query must read database {database!r} only")
        if operator not in READ_OPERATORS:
            raise PlanRefused(f"{_describe(operator)} is not allowed on the read-only endpoint")
        args = node.get("args") or {}
        texts = list(_texts(args))
        if operator == "ProcedureCall":
            names = calls(str(args.get("Details", "")))
            procedure = names[0] if names else "?"
            if procedure.lower() not in {p.lower() for p in PROCEDURES}:
                raise PlanRefused(f"procedure {procedure!r} is not allowed on the read-only "
                                  f"endpoint (allowed: {', '.join(sorted(PROCEDURES))})")
            texts = [str(args.get("Details", "")).split("(", 1)[-1]] + [
                t for t in texts if t != args.get("Details")]
        for text in texts:
            for name in calls(text):
                if not function_allowed(name, known_functions):
                    raise PlanRefused(f"function {name!r} is not allowed on the read-only "
                                      "endpoint")


_DESCRIPTIONS = {
    "LoadCSV": "LOAD CSV",
    "TransactionForeach": "CALL { ... } IN TRANSACTIONS",
    "TransactionApply": "CALL { ... } IN TRANSACTIONS",
    "TerminateTransactions": "TERMINATE TRANSACTIONS",
    "AdministrationCommand": "an administration command",
    "SystemProcedureCall": "a system procedure",
    "Foreach": "FOREACH",
}
_WRITE = re.compile(r"^(Create|Merge|LockingMerge|Set|Remove|Delete|DetachDelete|Foreach|"
                    r"SubqueryForeach|DoNothingIfExists|Drop)")


def _describe(operator: str) -> str:
    """The refused operator in words the user wrote."""
    if operator in _DESCRIPTIONS:
        return _DESCRIPTIONS[operator]
    if operator.startswith(("Show", "Terminate")):
        return f"a SHOW/TERMINATE command ({operator})"
    if _WRITE.match(operator):
        return f"writing ({operator})"
    return f"the plan operator {operator!r}"
