"""Circuit queries on the real Cook 2019 C. elegans connectome, checked with networkx/pandas
reading the raw cect files (tests/support/celegans.py)."""

from __future__ import annotations

import itertools
import random
from typing import Any

import neo4j
import networkx as nx
import pandas as pd
import pytest

from tests.support.celegans import cook_chemical_graph
from tests.support.graph import current_key
from tests.support.graphql import GraphQLClient

pytestmark = pytest.mark.neo4j


@pytest.fixture(scope="module")
def g() -> nx.DiGraph:
    return cook_chemical_graph()


@pytest.fixture(scope="module")
def types(celegans: dict, driver: neo4j.Driver) -> dict[str, str | None]:
    """Cell name -> type as stored (the type is data; the answers are recomputed here)."""
    rows = driver.execute_query("MATCH (n:Neuron {dataset: $d}) "
                                "RETURN n.instance AS name, n.type AS type",
                                d=current_key(driver, "cook2019")).records
    return {r["name"]: r["type"] for r in rows}


def _filtered(g: nx.DiGraph, w: int) -> nx.DiGraph:
    h = nx.DiGraph()
    h.add_nodes_from(g)
    h.add_edges_from((u, v) for u, v, d in g.edges(data=True) if d["weight"] >= w)
    return h


def _names(paths: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    return [tuple(n["instance"] for n in p["neurons"]) for p in paths]


PATHS = """query($s: NeuronSelector!, $t: NeuronSelector!, $w: Int!, $L: Int!, $f: Int!) {
  %s(dataset: "cook2019", source: $s, target: $t, minWeight: $w, maxLength: $L, first: $f) {
    truncated paths { length weights neurons { instance } } } }"""


def test_shortest_paths_between_neurons(gql: GraphQLClient, g: nx.DiGraph) -> None:
    rng = random.Random(4)
    names = sorted(g)
    checked = 0
    for w in (1, 4):
        h = _filtered(g, w)
        for s, t in [("ASHL", "AVAL"), ("AWCL", "AIBL"), ("ADLR", "DA01")] + [
                tuple(rng.sample(names, 2)) for _ in range(6)]:
            data = gql.data(PATHS % "shortestPaths", s={"name": s}, t={"name": t}, w=w, L=8,
                            f=1000)["shortestPaths"]
            try:
                expected = sorted(tuple(p) for p in nx.all_shortest_paths(h, s, t))
            except nx.NetworkXNoPath:
                expected = []
            expected = [p for p in expected if len(p) - 1 <= 8]
            assert sorted(_names(data["paths"])) == expected, (s, t, w)
            for p in data["paths"]:
                names_ = [n["instance"] for n in p["neurons"]]
                assert p["weights"] == [g[a][b]["weight"] for a, b in itertools.pairwise(names_)]
            checked += bool(expected)
    assert checked >= 6


def test_shortest_paths_between_types(gql: GraphQLClient, g: nx.DiGraph,
                                      types: dict[str, str | None]) -> None:
    w = 3
    h = _filtered(g, w)
    for ta, tb in (("ASH", "AVA"), ("AWC", "AVB"), ("IL2", "RIP")):
        sources = [n for n, t in types.items() if t == ta and n in h]
        targets = [n for n, t in types.items() if t == tb and n in h]
        found: list[tuple[str, ...]] = []
        for s, t in itertools.product(sources, targets):
            if s != t and nx.has_path(h, s, t):
                found += [tuple(p) for p in nx.all_shortest_paths(h, s, t)]
        best = min((len(p) for p in found), default=0)
        expected = sorted(p for p in found if len(p) == best)
        data = gql.data(PATHS % "shortestPaths", s={"type": ta}, t={"type": tb}, w=w, L=10,
                        f=1000)["shortestPaths"]
        assert sorted(_names(data["paths"])) == expected and expected, (ta, tb)


@pytest.mark.parametrize(("s", "t", "w", "L"), [
    ("AVAL", "VA08", 3, 3), ("ASHL", "AVAL", 5, 3), ("PVCL", "AVBR", 2, 3), ("AWCL", "AIYL", 1, 2)])
def test_simple_paths(gql: GraphQLClient, g: nx.DiGraph, s: str, t: str, w: int, L: int) -> None:
    h = _filtered(g, w)
    expected = sorted((tuple(p) for p in nx.all_simple_paths(h, s, t, cutoff=L)),
                      key=lambda p: (len(p), p))
    assert 0 < len(expected) <= 1000
    data = gql.data(PATHS % "simplePaths", s={"name": s}, t={"name": t}, w=w, L=L,
                    f=1000)["simplePaths"]
    got = _names(data["paths"])
    assert sorted(got) == sorted(expected) and not data["truncated"]
    assert [len(p) for p in got] == sorted(len(p) for p in got)
    small = gql.data(PATHS % "simplePaths", s={"name": s}, t={"name": t}, w=w, L=L,
                     f=1)["simplePaths"]
    assert len(small["paths"]) == 1 and small["truncated"] == (len(expected) > 1)


def test_reciprocal_pairs_paged(gql: GraphQLClient, g: nx.DiGraph) -> None:
    w = 3
    expected = {tuple(sorted((u, v))) for u, v, d in g.edges(data=True)
                if u != v and d["weight"] >= w and g.has_edge(v, u) and g[v][u]["weight"] >= w}
    got: set[tuple[str, str]] = set()
    after, pages = None, 0
    while True:
        page = gql.data("""query($after: String) { reciprocalPairs(dataset: "cook2019",
            minWeight: 3, first: 40, after: $after) { pairs { forward backward
            a { instance } b { instance } } pageInfo { hasNextPage endCursor } } }""",
                        after=after)["reciprocalPairs"]
        for p in page["pairs"]:
            a, b = p["a"]["instance"], p["b"]["instance"]
            assert (p["forward"], p["backward"]) == (g[a][b]["weight"], g[b][a]["weight"])
            got.add(tuple(sorted((a, b))))
        pages += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert got == expected and pages > 1


def _motif_all(gql: GraphQLClient, query: str, field: str, **variables: Any
               ) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    after = None
    while True:
        page = gql.data(query, after=after, **variables)[field]
        out += [tuple(b["neuron"]["instance"] for b in m["nodes"]) for m in page["matches"]]
        if not page["pageInfo"]["hasNextPage"]:
            return out
        after = page["pageInfo"]["endCursor"]


def test_feed_forward_loops(gql: GraphQLClient, g: nx.DiGraph) -> None:
    h = _filtered(g, 6)
    expected = sorted((a, b, c) for a, b in h.edges if a != b for c in h.successors(b)
                      if c not in (a, b) and h.has_edge(a, c))
    got = _motif_all(gql, """query($after: String) { feedForwardLoops(dataset: "cook2019",
        minWeight: 6, first: 500, after: $after) { matches { nodes { name neuron { instance } }
        edges { source target weight } } pageInfo { hasNextPage endCursor } } }""",
                     "feedForwardLoops")
    assert sorted(got) == expected and len(expected) > 50
    assert len(got) == len(set(got))


def test_motif_language_with_absent_edge_and_types(gql: GraphQLClient, g: nx.DiGraph,
                                                   types: dict[str, str | None]) -> None:
    """a -> b -> c (>= 4 each), no a -> c at all, a of type AVA: a disynaptic chain."""
    h = _filtered(g, 4)
    expected = sorted((a, b, c) for a in h if types.get(a) == "AVA" for b in h.successors(a)
                      if b != a for c in h.successors(b)
                      if c not in (a, b) and not g.has_edge(a, c))
    got = _motif_all(gql, """query($after: String) { motif(dataset: "cook2019", first: 200,
        after: $after, edges: [{source: "a", target: "b", minWeight: 4},
        {source: "b", target: "c", minWeight: 4}, {source: "a", target: "c", absent: true}],
        nodes: [{name: "a", type: "AVA"}]) { matches { nodes { name neuron { instance } } }
        pageInfo { hasNextPage endCursor } } }""", "motif")
    assert sorted(got) == expected and expected


def test_motif_matches_networkx_monomorphisms(gql: GraphQLClient, g: nx.DiGraph) -> None:
    """A 4-node motif (a -> b, a -> c, b -> d, c -> d) with weight >= 8 against networkx."""
    h = _filtered(g, 8)
    h.remove_edges_from(nx.selfloop_edges(h))
    pattern = nx.DiGraph([("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")])
    matcher = nx.algorithms.isomorphism.DiGraphMatcher(h, pattern)
    expected = sorted(tuple({v: k for k, v in m.items()}[x] for x in "abcd")
                      for m in matcher.subgraph_monomorphisms_iter())
    got = _motif_all(gql, """query($after: String) { motif(dataset: "cook2019", first: 1000,
        after: $after, edges: [{source: "a", target: "b", minWeight: 8},
        {source: "a", target: "c", minWeight: 8}, {source: "b", target: "d", minWeight: 8},
        {source: "c", target: "d", minWeight: 8}]) { matches { nodes { neuron { instance } } }
        pageInfo { hasNextPage endCursor } } }""", "motif")
    assert sorted(got) == expected and expected


def test_partners_by_type_aval(gql: GraphQLClient, g: nx.DiGraph,
                               types: dict[str, str | None]) -> None:
    for direction, edges in (("UPSTREAM", g.in_edges("AVAL", data=True)),
                             ("DOWNSTREAM", g.out_edges("AVAL", data=True))):
        frame = pd.DataFrame([(u if direction == "UPSTREAM" else v, d["weight"])
                              for u, v, d in edges], columns=["p", "w"])
        frame = frame[frame["w"] >= 3]
        frame["type"] = frame["p"].map(types)
        expected = {t: (len(x), int(x["w"].sum())) for t, x in frame.groupby("type")}
        data = gql.data("""query($d: Direction!) { partnersByType(dataset: "cook2019",
            neuron: {name: "AVAL"}, direction: $d, minWeight: 3) { type neurons synapses
            partners { weight partner { instance } } } }""", d=direction)["partnersByType"]
        assert {x["type"]: (x["neurons"], x["synapses"]) for x in data} == expected
        for group in data:
            ws = [p["weight"] for p in group["partners"]]
            assert ws == sorted(ws, reverse=True)


def test_type_connectivity(gql: GraphQLClient, g: nx.DiGraph,
                           types: dict[str, str | None]) -> None:
    edges = pd.DataFrame([(u, v, d["weight"]) for u, v, d in g.edges(data=True)],
                         columns=["a", "b", "w"])
    edges = edges[edges["w"] >= 2]
    edges["ta"], edges["tb"] = edges["a"].map(types), edges["b"].map(types)
    edges = edges.dropna(subset=["ta", "tb"])
    grouped = edges.groupby(["ta", "tb"]).agg(syn=("w", "sum"), conns=("w", "size"),
                                              pre=("a", "nunique"), post=("b", "nunique"))
    sizes = pd.Series([t for t in types.values() if t is not None]).value_counts()
    data = gql.data("""{ typeConnectivity(dataset: "cook2019", minWeight: 2, first: 5000) {
        preType postType synapses connections preNeurons postNeurons preTypeNeurons
        postTypeNeurons } }""")["typeConnectivity"]
    assert len(data) < 5000  # the page holds every pair (5000 stays within the query cost)
    got = {(r["preType"], r["postType"]): (r["synapses"], r["connections"], r["preNeurons"],
                                           r["postNeurons"]) for r in data}
    assert got == {k: tuple(int(x) for x in v) for k, v in grouped.iterrows()}
    assert [r["synapses"] for r in data] == sorted((r["synapses"] for r in data), reverse=True)
    for r in data[:50]:
        assert (r["preTypeNeurons"], r["postTypeNeurons"]) == (sizes[r["preType"]],
                                                               sizes[r["postType"]])
    cells = gql.data('{ cellTypes(dataset: "cook2019") { type neurons } }')["cellTypes"]
    assert {c["type"]: c["neurons"] for c in cells} == {k: int(v) for k, v in sizes.items()}


def test_multi_synaptic_on_weights_and_histogram(gql: GraphQLClient, g: nx.DiGraph,
                                                 types: dict[str, str | None]) -> None:
    """Cook has no synapse table: contacts come from connection weights (no synapse list)."""
    expected = {(u, v): d["weight"] for u, v, d in g.edges(data=True)
                if d["weight"] >= 15 and types.get(u) == "AVA"}
    data = gql.data("""{ multiSynapticContacts(dataset: "cook2019", minSynapses: 15,
        preType: "AVA", first: 1000) { contacts { synapseCount synapses { synapseId }
        pre { instance } post { instance } } } }""")["multiSynapticContacts"]["contacts"]
    assert {(c["pre"]["instance"], c["post"]["instance"]): c["synapseCount"]
            for c in data} == expected
    assert all(c["synapses"] == [] for c in data)
    hist = gql.data('{ synapsesPerConnection(dataset: "cook2019") { synapses connections } }')
    counts = pd.Series([d["weight"] for _, _, d in g.edges(data=True)]).value_counts()
    assert {b["synapses"]: b["connections"] for b in hist["synapsesPerConnection"]} == {
        int(k): int(v) for k, v in counts.items()}


def test_user_values_are_parameters(gql: GraphQLClient) -> None:
    """Cypher in a value is just a string that matches nothing."""
    evil = "AVA' OR 1=1 WITH 1 AS x MATCH (n) DETACH DELETE n //"
    data = gql.data("""query($t: String!) { typeConnectivity(dataset: "cook2019",
        preTypes: [$t]) { synapses } cellTypes(dataset: "cook2019", types: [$t]) { type }
        multiSynapticContacts(dataset: "cook2019", preType: $t) { contacts { synapseCount } }
        }""", t=evil)
    assert data == {"typeConnectivity": [], "cellTypes": [],
                    "multiSynapticContacts": {"contacts": []}}
    assert gql.data('{ neuron(dataset: "cook2019", name: "AVAL") { instance } }')["neuron"]


@pytest.mark.parametrize(("query", "needle"), [
    ('{ simplePaths(dataset: "cook2019", source: {name: "AVAL"}, target: {name: "AVAR"}, '
     'maxLength: 9) { truncated } }', "maxLength must be between 1 and 6"),
    ('{ shortestPaths(dataset: "cook2019", source: {name: "AVAL", type: "AVA"}, '
     'target: {name: "AVAR"}) { truncated } }', "exactly one of bodyId, name or type"),
    ('{ motif(dataset: "cook2019", edges: [{source: "a", target: "a"}]) { matches { edges '
     '{ weight } } } }', "self-loop"),
    ('{ motif(dataset: "cook2019", edges: [{source: "a b", target: "c"}]) { matches { edges '
     '{ weight } } } }', "invalid node name"),
    ('{ motif(dataset: "cook2019", edges: [{source: "a", target: "b", absent: true}]) '
     '{ matches { edges { weight } } } }', "not `absent`"),
    ('{ reciprocalPairs(dataset: "cook2019", after: "bm9wZQ==") { pairs { forward } } }',
     "invalid cursor"),
    ('{ partnersByType(dataset: "cook2019", neuron: {name: "NOPE"}) { type } }',
     "matches no neurons"),
    ('{ multiSynapticContacts(dataset: "cook2019", first: 5000) { contacts { synapseCount } }'
     ' }', "first must be between"),
    ('{ chandelierCells(dataset: "nope") { totalCount } }', "unknown dataset"),
])
def test_bad_arguments(gql: GraphQLClient, query: str, needle: str) -> None:
    body = gql(query)
    assert body.get("errors"), body
    message = " ".join(e["message"] for e in body["errors"])
    assert needle in message, message


def test_timeout_is_a_clear_graphql_error(gql: GraphQLClient,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A deliberately expensive query (every simple path of up to 6 hops between two hubs)
    under a 0.2 s limit comes back as a GraphQL error naming the limit."""
    monkeypatch.setenv("CONNECTOME_QUERY_TIMEOUT_S", "0.2")
    body = gql("""{ simplePaths(dataset: "cook2019", source: {type: "AVA"},
        target: {type: "AVB"}, maxLength: 6, first: 1000) { truncated } }""")
    assert body["data"] is None
    message = body["errors"][0]["message"]
    assert "ran longer than" in message and "limit" in message, message


def test_chandelier_fields_without_compartments(gql: GraphQLClient) -> None:
    data = gql.data('{ chandelierCells(dataset: "cook2019") { totalCount } '
                    'chandelierInnervation(dataset: "cook2019") { contacts { synapseCount } } }')
    assert data["chandelierCells"]["totalCount"] == 0
    assert data["chandelierInnervation"]["contacts"] == []


def test_motif_anchored_on_a_body_id(gql: GraphQLClient, g: nx.DiGraph) -> None:
    """A constraint on the first node's bodyId narrows the index seek; pages still walk all."""
    aval = gql.data('{ neuron(dataset: "cook2019", name: "AVAL") { bodyId } }')["neuron"]
    expected = sorted(("AVAL", b, c) for b in g.successors("AVAL") if b != "AVAL"
                      for c in g.successors(b) if c not in ("AVAL", b)
                      and g["AVAL"][b]["weight"] >= 3 and g[b][c]["weight"] >= 3)
    got = _motif_all(gql, """query($id: BodyId!, $after: String) { motif(dataset: "cook2019",
        first: 25, after: $after, edges: [{source: "a", target: "b", minWeight: 3},
        {source: "b", target: "c", minWeight: 3}], nodes: [{name: "a", bodyId: $id}]) {
        matches { nodes { neuron { instance } } } pageInfo { hasNextPage endCursor } } }""",
                     "motif", id=aval["bodyId"])
    assert sorted(got) == expected and len(expected) > 25
