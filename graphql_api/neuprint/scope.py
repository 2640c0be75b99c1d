"""Cypher sent for one dataset reads that dataset only: labels rewritten, then the plan checked.

neuPrint's queries name labels (`:Neuron`, `:hemibrain_Neuron`, `:Meta`, ...). `rewrite` turns
each such label into the label of the requested version (`graphdb.dataset_scope`:
`cook2019@v3_Neuron`). The rewrite is a convenience, not the guarantee: `check_scoped` then
reads Neo4j's `EXPLAIN` plan and requires every leaf that finds nodes to start from that
version's labels. Relationships never join two versions, so whatever the plan reaches from
there is in the version too. A leaf that reads anything else (all nodes, a relationship scan, a
node by id, another dataset's label) refuses the query, however its text was spelled.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from connectome_query.graphql_api.cypher_plan import PlanRefused
from connectome_query.schema.model import VIEW_LABELS, scope_label

_TOKEN = re.compile(r"""
    (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<quoted>`(?:[^`]|``)*`)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<name>[^\W\d]\w*)
  | (?P<number>\d[\w.]*)
  | (?P<space>\s+)
  | (?P<other>.)
""", re.VERBOSE | re.DOTALL)


@dataclass(frozen=True)
class Scope:
    """One dataset version as neuPrint queries see it."""

    name: str
    """The dataset's name (`cook2019`), as in `:cook2019_Neuron`."""
    key: str
    """The version's key (`cook2019@v3`)."""

    def labels(self) -> frozenset[str]:
        """The version's own labels."""
        return frozenset(scope_label(self.key, label) for label in VIEW_LABELS)

    def renames(self) -> dict[str, str]:
        """Label as written -> the version's label."""
        out = {}
        for label in VIEW_LABELS:
            scoped = scope_label(self.key, label)
            out[label] = scoped
            out[f"{self.name}_{label}"] = scoped
        return out


def _quote(label: str) -> str:
    return "`" + label.replace("`", "``") + "`"


def _significant(text: str) -> Iterator[tuple[str, str, int, int]]:
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup or "other"
        if kind not in ("space", "comment"):
            yield kind, match.group(), match.start(), match.end()


def rewrite(text: str, scope: Scope) -> str:
    """`text` with every label of neuPrint's model (`:Neuron`, `:cook2019_Neuron`) replaced by
    the version's label. Map keys (`{type: ...}`) and relationship types stay as they are."""
    renames = scope.renames()
    tokens = list(_significant(text))
    out: list[str] = []
    last = 0
    brackets: list[str] = []
    in_labels = False
    for i, (kind, value, start, end) in enumerate(tokens):
        if kind == "other" and value in "([{":
            brackets.append(value)
        elif kind == "other" and value in ")]}" and brackets:
            brackets.pop()
        if kind in ("name", "quoted") and in_labels:
            label = value[1:-1].replace("``", "`") if kind == "quoted" else value
            if label in renames and (not brackets or brackets[-1] != "["):
                out.append(text[last:start])
                out.append(_quote(renames[label]))
                last = end
            continue
        if kind == "other" and value == ":":
            prev = tokens[i - 1] if i else None
            before = tokens[i - 2] if i > 1 else None
            map_key = (brackets and brackets[-1] == "{" and prev is not None
                       and prev[0] in ("name", "quoted") and before is not None
                       and before[1] in ("{", ","))
            in_labels = not map_key
        elif kind == "other" and value in "|&!" and in_labels:
            continue
        else:
            in_labels = False
    out.append(text[last:])
    return "".join(out)


_LABEL = re.compile(r":\s*(`(?:[^`]|``)*`|[^\W\d]\w*)")
_NODE_PATTERN = re.compile(r"\(\s*(?:[^\W\d]\w*|`(?:[^`]|``)*`)?\s*(:[^()\[\]]*)?\)")

ONE_LABEL = frozenset({
    "NodeByLabelScan", "NodeIndexSeek", "NodeUniqueIndexSeek", "NodeIndexSeekByRange",
    "NodeUniqueIndexSeekByRange", "NodeIndexScan", "NodeIndexContainsScan",
    "NodeIndexEndsWithScan", "SubtractionNodeByLabelsScan",
})
"""Leaves that find nodes by the first label in their details."""


_VARIABLE = re.compile(r"^\s*(?:(?:UNIQUE|RANGE|TEXT|POINT|INDEX)\s+)*"
                       r"(?:`(?:[^`]|``)*`|[^\W\d]\w*)\s*:")
"""`n:` (or `UNIQUE n:`, `RANGE INDEX n:`) at the start of a leaf's details: the node
variable."""
_EXPR_PART = re.compile(r"\s*(`(?:[^`]|``)*`|[^\W\d]\w*|[|&!:%()])")


def _expression(details: str) -> list[str]:
    """The label expression after the node variable in `details`, as tokens: names unquoted,
    operators (`|`, `&`, `!`, `%`, parentheses) as they are. Stops at anything else."""
    head = _VARIABLE.match(details)
    if head is None:
        return []
    tokens: list[str] = []
    pos = head.end()
    while (match := _EXPR_PART.match(details, pos)) is not None:
        token = match.group(1)
        if token == "(" and tokens and tokens[-1] not in "|&!:(":
            break  # `Label(prop)`: an index's properties follow
        tokens.append(token[1:-1].replace("``", "`") if token.startswith("`") else token)
        pos = match.end()
    return tokens


def _only_names(tokens: list[str], joiner: str) -> list[str] | None:
    """The names of `A<joiner>B<joiner>...`, or None for any other expression."""
    names = tokens[0::2]
    if not names or any(t != joiner for t in tokens[1::2]) or any(
            n in "|&!:%()" for n in names):
        return None
    return names


def _labels(text: str) -> list[str]:
    return [m.group(1)[1:-1].replace("``", "`") if m.group(1).startswith("`") else m.group(1)
            for m in _LABEL.finditer(text)]


def _leaves(plan: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    stack = [plan]
    while stack:
        node = stack.pop()
        children = node.get("children") or ()
        if not children:
            yield node
        stack.extend(children)


ROWS_FROM_NOTHING = frozenset({"Argument", "EmptyRow", "Projection"})
"""Leaves that read no graph: rows from an enclosing operator, or values computed from
literals and parameters (`WITH $ids AS ids` before an index seek). Neo4j plans a subquery or
pattern inside an expression as operators of their own, whose leaves are checked too."""


def _leaf_scoped(operator: str, details: str, own: frozenset[str]) -> bool:
    if operator in ROWS_FROM_NOTHING:
        return True
    expression = _expression(details)
    if operator in ONE_LABEL:
        return bool(expression) and expression[0] in own
    if operator == "UnionNodeByLabelsScan":
        names = _only_names(expression, "|")
        return names is not None and all(label in own for label in names)
    if operator == "IntersectionNodeByLabelsScan":
        names = _only_names(expression, "&")
        return names is not None and any(label in own for label in names)
    if operator == "MultiNodeIndexSeek":
        seeks = [part for part in details.split(",") if ":" in part]
        return bool(seeks) and all(_labels(part)[:1] and _labels(part)[0] in own
                                   for part in seeks)
    counted = details.rpartition(" AS ")[0] if " AS " in details else details
    if operator == "NodeCountFromCountStore":
        patterns = _NODE_PATTERN.findall(counted)
        return bool(patterns) and all(any(label in own for label in _labels(p))
                                      for p in patterns)
    if operator == "RelationshipCountFromCountStore":
        no_types = re.sub(r"\[[^\]]*\]", "", counted)
        return any(label in own for label in _labels(no_types))
    return False


def check_scoped(plan: Mapping[str, Any], scope: Scope) -> None:
    """PlanRefused unless every leaf of `plan` finds nodes through `scope`'s labels (or takes
    rows from an enclosing operator). Procedures are refused: they read the whole database."""
    own = scope.labels()
    for node in _plan_nodes(plan):
        if str(node.get("operatorType", "")).partition("@")[0] == "ProcedureCall":
            raise PlanRefused("procedures are not available for one dataset's Cypher")
    for leaf in _leaves(plan):
        operator = str(leaf.get("operatorType", "")).partition("@")[0]
        details = str((leaf.get("args") or {}).get("Details", ""))
        if not _leaf_scoped(operator, details, own):
            raise PlanRefused(
                f"the query would read outside dataset {scope.name!r} ({operator}"
                f"{': ' + details[:120] if details else ''}); start every MATCH from a labelled "
                "node such as (n:Neuron), (s:Synapse) or (m:Meta)")


def _plan_nodes(plan: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    stack = [plan]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.get("children") or ())
