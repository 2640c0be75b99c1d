"""GraphQL basics on the real C. elegans data, checked against networkx/pandas."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectome_query.graphql_api.schema import export_sdl
from tests.support.celegans import cook_chemical_graph, cook_edges, cook_gap_junctions
from tests.support.graphql import GraphQLClient

pytestmark = pytest.mark.neo4j

SDL_PATH = Path(__file__).resolve().parents[2] / "schema" / "schema.graphql"


def test_sdl_export_is_current() -> None:
    assert SDL_PATH.read_text() == export_sdl(), (
        "schema/schema.graphql is stale: run `connectome export-sdl`")


def test_datasets_totals(gql: GraphQLClient) -> None:
    data = gql.data("{ datasets { name neuronCount chemicalSynapses gapJunctions "
                    "electricalConnections } }")
    cook = next(d for d in data["datasets"] if d["name"] == "cook2019")
    raw = cook_edges()
    assert cook["chemicalSynapses"] == int(raw[raw["Type"] == "chemical"]["Weight"].sum())
    gap = cook_gap_junctions()
    assert cook["gapJunctions"] == sum(gap.values())
    assert cook["electricalConnections"] == len(gap)
    assert cook["neuronCount"] == len(set(raw["Source"]) | set(raw["Target"]))


def test_aval_upstream_partners(gql: GraphQLClient) -> None:
    g = cook_chemical_graph()
    expected = sorted(((d["weight"], u) for u, _, d in g.in_edges("AVAL", data=True)),
                      key=lambda t: -t[0])
    data = gql.data("""query($n: Int!) { neuron(dataset: "cook2019", name: "AVAL") {
        post upstream(first: $n) { weight partner { instance } } } }""", n=10)
    got = [(c["weight"], c["partner"]["instance"]) for c in data["neuron"]["upstream"]]
    assert [w for w, _ in got] == [w for w, _ in expected[:10]]
    assert set(got) <= set(expected)
    assert data["neuron"]["post"] == sum(d["weight"] for _, _, d in g.in_edges("AVAL", data=True))


def test_min_weight_and_downstream(gql: GraphQLClient) -> None:
    g = cook_chemical_graph()
    data = gql.data("""{ neuron(dataset: "cook2019", name: "AVAL") {
        downstream(minWeight: 5, first: 1000) { weight partner { instance } } } }""")
    got = {c["partner"]["instance"]: c["weight"] for c in data["neuron"]["downstream"]}
    assert got == {v: d["weight"] for _, v, d in g.out_edges("AVAL", data=True)
                   if d["weight"] >= 5}


def test_electrical_partners_undirected(gql: GraphQLClient) -> None:
    gap = cook_gap_junctions()
    expected = {next(iter(k - {"AVAL"}), "AVAL"): w for k, w in gap.items() if "AVAL" in k}
    data = gql.data("""{ neuron(dataset: "cook2019", name: "AVAL") {
        electricalPartners(first: 1000) { weight partner { instance } } } }""")
    got = {c["partner"]["instance"]: c["weight"] for c in data["neuron"]["electricalPartners"]}
    assert got == expected


def test_neuron_by_body_id_round_trip(gql: GraphQLClient) -> None:
    first = gql.data('{ neuron(dataset: "cook2019", name: "RIML") { bodyId instance type } }')
    body_id = first["neuron"]["bodyId"]
    assert isinstance(body_id, str)
    again = gql.data("query($id: BodyId!) { neuron(dataset: \"cook2019\", bodyId: $id) "
                     "{ instance } }", id=body_id)
    assert again["neuron"]["instance"] == "RIML"


def test_cursor_pagination_walks_every_neuron(gql: GraphQLClient) -> None:
    raw = cook_edges()
    names: list[str] = []
    after = None
    pages = 0
    while True:
        data = gql.data("""query($after: String) { neurons(dataset: "cook2019", first: 50,
            after: $after) { totalCount edges { node { instance } } pageInfo { hasNextPage
            endCursor } } }""", after=after)["neurons"]
        names += [e["node"]["instance"] for e in data["edges"]]
        pages += 1
        if not data["pageInfo"]["hasNextPage"]:
            break
        after = data["pageInfo"]["endCursor"]
    everyone = set(raw["Source"]) | set(raw["Target"])
    assert sorted(names) == sorted(everyone)
    assert data["totalCount"] == len(everyone)
    assert pages == -(-len(everyone) // 50)


def test_filter_by_type_and_class(gql: GraphQLClient) -> None:
    data = gql.data('{ neurons(dataset: "cook2019", type: "AVA") { edges { node { instance } } } }')
    assert sorted(e["node"]["instance"] for e in data["neurons"]["edges"]) == ["AVAL", "AVAR"]
    data = gql.data('{ neurons(dataset: "cook2019", cellClass: "Touch", first: 100) '
                    '{ totalCount edges { node { cellClass } } } }')
    classes = {e["node"]["cellClass"] for e in data["neurons"]["edges"]}
    assert classes == {"Touch"} and data["neurons"]["totalCount"] >= 4


@pytest.mark.parametrize(("query", "needle"), [
    ('{ neuron(dataset: "nope", name: "AVAL") { bodyId } }', "unknown dataset"),
    ('{ neuron(dataset: "cook2019") { bodyId } }', "exactly one of bodyId or name"),
    ('{ neurons(dataset: "cook2019", first: 100000) { totalCount } }', "first must be"),
    ('{ neurons(dataset: "cook2019", after: "garbage!") { totalCount } }', "invalid cursor"),
    ('{ neuron(dataset: "cook2019", bodyId: "12ab") { instance } }', "BodyId"),
    ('{ neuron(dataset: "cook2019", name: "AVAL") { upstream(minWeight: -1) { weight } } }',
     "minWeight"),
])
def test_bad_arguments_give_clear_errors(gql: GraphQLClient, query: str, needle: str) -> None:
    body = gql(query)
    assert body.get("errors"), body
    message = " ".join(e["message"] for e in body["errors"])
    assert needle in message
    assert "Traceback" not in message and "neo4j" not in message.lower()


def test_unknown_neuron_is_null(gql: GraphQLClient) -> None:
    assert gql.data('{ neuron(dataset: "cook2019", name: "NOPE") { bodyId } }')["neuron"] is None


def test_graphiql_page_served(gql: GraphQLClient) -> None:
    page = gql.http.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()


def test_partner_soma_locations_come_back(gql: GraphQLClient, driver, tmp_path: Path) -> None:
    import pandas as pd

    from connectome_query.ingest.loader import load
    from connectome_query.ingest.sources import read_source
    from tests.support.neuprint_files import random_neuprint

    g = random_neuprint(tmp_path / "soma", seed=11)
    load(driver, read_source(str(tmp_path / "soma")), "t_soma")
    somas = pd.read_csv(tmp_path / "soma" / "neurons.csv").set_index("bodyId")["somaLocation"]
    target = max(g.nodes, key=lambda v: g.in_degree(v))
    data = gql.data("query($id: BodyId!) { neuron(dataset: \"t_soma\", bodyId: $id) { "
                    "somaLocation { x y z } upstream(first: 1000) { partner { bodyId "
                    "somaLocation { x y z } } } } }", id=str(target))["neuron"]
    assert len(data["upstream"]) == g.in_degree(target)
    for row in [{"partner": {"bodyId": str(target), "somaLocation": data["somaLocation"]}},
                *data["upstream"]]:
        p = row["partner"]
        expected = [float(v) for v in somas[int(p["bodyId"])].strip("[]").split(",")]
        assert [p["somaLocation"][k] for k in "xyz"] == expected
