"""What the read-only Cypher endpoint lets a query use: plan operators, procedures, functions.

Data only; `cypher_plan` checks an `EXPLAIN` plan against it. Everything not listed is refused,
so a new Neo4j operator or function is refused until someone reviews it and adds it here
(`tests/graphql_api/test_cypher_policy.py` lists the server's functions and procedures and fails
on any that is neither allowed nor refused here). Allowing a read-only plugin function (an APOC
function neuPrint's clients use, say) is a change to `PLUGIN_ALLOWLIST` in
`graphdb.local_server`, which both the server (it loads only those) and this list read. Nested
Cypher (`apoc.cypher.*`, `apoc.periodic.*`), file and network access (`LOAD CSV`, `apoc.load.*`,
`apoc.import.*`), admin commands and other sessions' transactions never appear here.
"""

from __future__ import annotations

from connectome_query.graphdb.local_server import PLUGIN_ALLOWLIST

READ_OPERATORS = frozenset({
    # leaves: scans and seeks
    "AllNodesScan", "NodeByLabelScan", "UnionNodeByLabelsScan", "IntersectionNodeByLabelsScan",
    "SubtractionNodeByLabelsScan", "NodeByIdSeek", "NodeByElementIdSeek", "NodeIndexSeek",
    "NodeUniqueIndexSeek", "NodeIndexSeekByRange", "NodeUniqueIndexSeekByRange", "NodeIndexScan",
    "NodeIndexContainsScan", "NodeIndexEndsWithScan", "MultiNodeIndexSeek",
    "DirectedRelationshipByIdSeek", "UndirectedRelationshipByIdSeek",
    "DirectedRelationshipByElementIdSeek", "UndirectedRelationshipByElementIdSeek",
    "DirectedRelationshipTypeScan", "UndirectedRelationshipTypeScan",
    "DirectedAllRelationshipsScan", "UndirectedAllRelationshipsScan",
    "DirectedUnionRelationshipTypesScan", "UndirectedUnionRelationshipTypesScan",
    "DirectedRelationshipIndexSeek", "UndirectedRelationshipIndexSeek",
    "DirectedRelationshipUniqueIndexSeek", "UndirectedRelationshipUniqueIndexSeek",
    "DirectedRelationshipIndexSeekByRange", "UndirectedRelationshipIndexSeekByRange",
    "DirectedRelationshipUniqueIndexSeekByRange", "UndirectedRelationshipUniqueIndexSeekByRange",
    "DirectedRelationshipIndexScan", "UndirectedRelationshipIndexScan",
    "DirectedRelationshipIndexContainsScan", "UndirectedRelationshipIndexContainsScan",
    "DirectedRelationshipIndexEndsWithScan", "UndirectedRelationshipIndexEndsWithScan",
    "NodeCountFromCountStore", "RelationshipCountFromCountStore", "Argument",
    # traversal
    "Expand(All)", "Expand(Into)", "OptionalExpand(All)", "OptionalExpand(Into)",
    "VarLengthExpand(All)", "VarLengthExpand(Into)", "VarLengthExpand(Pruning)",
    "VarLengthExpand(Pruning,BFS,All)", "VarLengthExpand(Pruning,BFS,Into)",
    "ShortestPath", "StatefulShortestPath(All)", "StatefulShortestPath(Into)",
    "Repeat(Trail)", "Repeat(Walk)", "BidirectionalRepeat(Trail)", "PathPropagatingBFS",
    "ProjectEndpoints", "NullifyMetadata", "TriadicSelection", "TriadicBuild", "TriadicFilter",
    # rows
    "Filter", "Projection", "ProduceResults", "EmptyResult", "CacheProperties", "Eager",
    "Limit", "ExhaustiveLimit", "Skip", "Sort", "PartialSort", "Top", "PartialTop", "Distinct",
    "OrderedDistinct", "EagerAggregation", "OrderedAggregation", "Unwind", "Union",
    "OrderedUnion", "Optional", "Anti",
    # joins and subqueries
    "Apply", "SemiApply", "AntiSemiApply", "LetSemiApply", "LetAntiSemiApply",
    "SelectOrSemiApply", "SelectOrAntiSemiApply", "LetSelectOrSemiApply",
    "LetSelectOrAntiSemiApply", "ConditionalApply", "AntiConditionalApply", "RollUpApply",
    "CartesianProduct", "NodeHashJoin", "ValueHashJoin", "NodeLeftOuterHashJoin",
    "NodeRightOuterHashJoin",
    # checked one by one against PROCEDURES
    "ProcedureCall",
})
"""Plan operators of read queries (Neo4j 5.26 names). Refused, among others: every write
(Create, Merge, Set*, Remove*, Delete*, Foreach), `LoadCSV`, `CALL ... IN TRANSACTIONS`
(TransactionForeach/TransactionApply), Show*/TerminateTransactions, AdministrationCommand,
SystemProcedureCall."""

PROCEDURES = frozenset({"db.labels", "db.relationshipTypes", "db.propertyKeys"})
"""Procedures a query may CALL: reviewed, read-only, cheap, about the schema only."""

BUILTIN_FUNCTIONS = frozenset({
    # aggregating
    "avg", "collect", "count", "max", "min", "percentileCont", "percentileDisc", "stdev",
    "stdevp", "sum",
    # lists and predicates
    "keys", "labels", "nodes", "range", "reduce", "relationships", "tail", "toBooleanList",
    "toFloatList", "toIntegerList", "toStringList", "all", "any", "exists", "isEmpty", "none",
    "single",
    # numbers
    "e", "exp", "log", "log10", "sqrt", "abs", "ceil", "floor", "isNaN", "rand", "round",
    "sign", "acos", "asin", "atan", "atan2", "cos", "cot", "degrees", "haversin", "pi",
    "radians", "sin", "tan",
    # scalars
    "char_length", "character_length", "coalesce", "elementId", "endNode", "head", "id",
    "last", "length", "nullIf", "properties", "randomUUID", "size", "startNode", "timestamp",
    "toBoolean", "toBooleanOrNull", "toFloat", "toFloatOrNull", "toInteger", "toIntegerOrNull",
    "type", "valueType",
    # strings
    "btrim", "left", "lower", "ltrim", "normalize", "replace", "reverse", "right", "rtrim",
    "split", "substring", "toLower", "toString", "toStringOrNull", "toUpper", "trim", "upper",
    # space and time
    "point", "point.distance", "point.withinBBox", "vector.similarity.cosine",
    "vector.similarity.euclidean",
    "date", "date.realtime", "date.statement", "date.transaction", "date.truncate",
    "datetime", "datetime.fromepoch", "datetime.fromepochmillis", "datetime.realtime",
    "datetime.statement", "datetime.transaction", "datetime.truncate", "duration",
    "duration.between", "duration.inDays", "duration.inMonths", "duration.inSeconds",
    "localdatetime", "localdatetime.realtime", "localdatetime.statement",
    "localdatetime.transaction", "localdatetime.truncate", "localtime", "localtime.realtime",
    "localtime.statement", "localtime.transaction", "localtime.truncate", "time",
    "time.realtime", "time.statement", "time.transaction", "time.truncate",
})
"""Neo4j's own functions a query may call: pure computations on values."""

REFUSED_BUILTIN_FUNCTIONS = frozenset({"graph.byName", "graph.byElementId", "file",
                                       "linenumber"})
"""Built-in functions that reach other graphs or only mean something inside LOAD CSV."""

PLANNER_FUNCTIONS = frozenset({"getDegree", "shortestPath", "allShortestPaths"})
"""Forms the planner writes into operator details that are not user functions."""

FUNCTIONS = frozenset(name.lower() for name in (
    BUILTIN_FUNCTIONS | PLANNER_FUNCTIONS | frozenset(PLUGIN_ALLOWLIST)))
"""Every name a plan may call, lower-cased (Neo4j matches built-in names case-insensitively)."""

KEYWORDS = frozenset({
    "and", "or", "xor", "not", "in", "is", "when", "then", "else", "case", "end", "where",
    "distinct", "starts", "ends", "with", "contains", "as",
})
"""Words that may stand before a parenthesis in operator details without calling anything."""
