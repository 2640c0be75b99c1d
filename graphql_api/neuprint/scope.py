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
from connectome_query.schema.model import SCOPED_LABELS, scope_label

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
        return frozenset(scope_label(self.key, label) for label in SCOPED_LABELS)

    def renames(self) -> dict[str, str]:
        """Label as written -> the version's label."""
        out = {}
        for label in SCOPED_LABELS:
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


def _leaf_scoped(operator: str, details: str, own: frozenset[str]) -> bool:
    labels = _labels(details)
    if operator == "Argument":
        return True
    if operator in ONE_LABEL:
        return bool(labels) and labels[0] in own
    if operator == "UnionNodeByLabelsScan":
        return bool(labels) and all(label in own for label in labels)
    if operator == "IntersectionNodeByLabelsScan":
        return any(label in own for label in labels)
    if operator == "MultiNodeIndexSeek":
        seeks = [part for part in details.split(",") if ":" in part]
        return bool(seeks) and all(_labels(part)[:1] and _labels(part)[0] in own
                                   for part in seeks)
    if operator == "NodeCountFromCountStore":
        patterns = _NODE_PATTERN.findall(details)
        return bool(patterns) and all(any(label in own for label in _labels(p))
                                      for p in patterns)
    if operator == "RelationshipCountFromCountStore":
        no_types = re.sub(r"\[[^\]]*\]", "", details)
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
