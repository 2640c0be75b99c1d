"""The real neuprint-python client against `connectome serve --tls`, answers compared with
pandas/networkx over the raw files (cect for C. elegans, the navis-built table and SWC files for
the hemibrain neurons)."""

from __future__ import annotations

import io

import httpx
import networkx as nx
import numpy as np
import pandas as pd
import pytest
from neuprint import (
    Client,
    NeuronCriteria,
    fetch_adjacencies,
    fetch_neurons,
    fetch_simple_connections,
    fetch_synapses,
)

from tests.support import celegans as raw
from tests.support.hemibrain import Hemibrain
from tests.support.neuprint_server import HEMIBRAIN, TOKEN, VERSIONED, Served

pytestmark = [pytest.mark.neo4j, pytest.mark.slow]


def client(served: Served, dataset: str) -> Client:
    return Client(served.url, dataset=dataset, token=TOKEN, verify=str(served.cert))


def test_client_starts_and_lists_every_dataset_and_version(served: Served) -> None:
    c = client(served, "cook2019")
    listed = c.fetch_datasets(reload_cache=True)
    for name in ("cook2019", "varshney2011", HEMIBRAIN, VERSIONED, f"{VERSIONED}:v1",
                 f"{VERSIONED}:v2"):
        assert name in listed
    assert listed[VERSIONED]["version"] == 2
    assert c.fetch_version()
    assert c.fetch_server_info() is True


def test_fetch_custom_sees_the_requested_dataset_only(served: Served) -> None:
    cells = set(raw.cook_edges()["Source"]) | set(raw.cook_edges()["Target"])
    cook = client(served, "cook2019").fetch_custom("MATCH (n:Neuron) RETURN count(n) AS n")
    assert int(cook["n"].iloc[0]) == len(cells)
    names = client(served, "cook2019").fetch_custom(
        "MATCH (n:Neuron) RETURN DISTINCT n.dataset AS d")
    assert list(names["d"]) == ["cook2019@v1"]


def test_fetch_neurons_by_type_once_each(served: Served) -> None:
    neurons, _ = fetch_neurons(NeuronCriteria(type="AVA"), client=client(served, "cook2019"))
    expected = sorted(n for n in set(raw.cook_edges()["Source"]) if n in ("AVAL", "AVAR"))
    assert sorted(neurons["instance"]) == expected
    assert neurons["bodyId"].is_unique


def _instances(c: Client) -> dict[int, str]:
    df = c.fetch_custom("MATCH (n:Neuron) RETURN n.bodyId AS b, n.instance AS i")
    return dict(zip(df["b"], df["i"], strict=True))


def test_fetch_adjacencies_equal_the_raw_chemical_graph(served: Served) -> None:
    c = client(served, "cook2019")
    names = _instances(c)
    _, conns = fetch_adjacencies(NeuronCriteria(instance=["AVAL", "AVAR"]), None, client=c)
    got = conns.groupby(["bodyId_pre", "bodyId_post"])["weight"].sum()
    got_named = {(names[a], names[b]): int(w) for (a, b), w in got.items()}
    g = raw.cook_chemical_graph()
    want = {(a, b): d["weight"] for a in ("AVAL", "AVAR") for b, d in g[a].items()}
    assert got_named == want


def test_fetch_simple_connections_equal_the_raw_graph(served: Served) -> None:
    c = client(served, "cook2019")
    names = _instances(c)
    df = fetch_simple_connections(None, NeuronCriteria(instance="AVAL"), client=c)
    got = {names[int(a)]: int(w) for a, w in zip(df["bodyId_pre"], df["weight"], strict=True)}
    g = raw.cook_chemical_graph()
    assert got == {a: g[a]["AVAL"]["weight"] for a in g.predecessors("AVAL")}


def test_timeboxed_query_answers_like_the_plain_one(served: Served) -> None:
    c = client(served, "varshney2011")
    inner = 'MATCH (n:Neuron) WHERE n.type = \\"AVA\\" RETURN count(n) AS c'
    boxed = c.fetch_custom(f'CALL apoc.cypher.runTimeboxed("{inner}", {{}}, 5000) '
                           "YIELD value RETURN value.c AS count")
    plain = c.fetch_custom('MATCH (n:Neuron) WHERE n.type = "AVA" RETURN count(n) AS c')
    assert int(boxed["count"].iloc[0]) == int(plain["c"].iloc[0]) > 0


@pytest.mark.parametrize("cypher", [
    "MATCH (n) RETURN count(n) AS n",
    "MATCH (n:cook2019_Neuron) RETURN count(n) AS n",
    "MATCH (n:`cook2019@v1_Neuron`) RETURN count(n) AS n",
    "MATCH (n:Neuron) WITH n LIMIT 1 MATCH (m) WHERE elementId(m) = elementId(n) RETURN m",
    "MATCH ()-[r:ConnectsTo]->() RETURN count(r) AS n",
    "MATCH (a)-[r:ConnectsTo]->(b) RETURN a.dataset LIMIT 1",
    "CALL db.labels() YIELD label RETURN label",
    'CALL apoc.cypher.runTimeboxed("MATCH (n) RETURN count(n) AS c", {}, 1000) '
    "YIELD value RETURN value.c AS c",
    "MATCH (n:Neuron) SET n.x = 1 RETURN n",
    "MATCH (n:Neuron) CALL () { MATCH (m) RETURN count(m) AS c } RETURN c LIMIT 1",
    "WITH 1 AS x RETURN COLLECT { MATCH (m) RETURN m.dataset } AS c",
    "WITH [1] AS ids RETURN [(m)-->(o) | o.dataset] AS c",
    "WITH [1] AS ids, COUNT { MATCH (q) } AS z MATCH (n:Neuron) WHERE n.bodyId IN ids "
    "RETURN z",
])
def test_other_datasets_cannot_be_read(served: Served, cypher: str) -> None:
    response = httpx.post(f"{served.url}/api/custom/custom", verify=str(served.cert),
                          json={"cypher": cypher, "dataset": "varshney2011"})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] and body["code"] == "query_refused"


def test_traversals_stay_inside_the_dataset(served: Served) -> None:
    df = client(served, "varshney2011").fetch_custom(
        "MATCH (n:Neuron)-[*1..2]-(m) RETURN DISTINCT m.dataset AS d")
    assert set(df["d"]) == {"varshney2011@v1"}


def test_unknown_dataset_is_a_neuprint_error(served: Served) -> None:
    response = httpx.post(f"{served.url}/api/custom/custom", verify=str(served.cert),
                          json={"cypher": "MATCH (n:Neuron) RETURN n", "dataset": "nope"})
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_dataset"
    assert "nope" in response.json()["error"]


def test_older_version_answers_as_loaded(served: Served, versions: list[nx.DiGraph]) -> None:
    for label, graph in ((f"{VERSIONED}:v1", versions[0]), (f"{VERSIONED}:v2", versions[1]),
                         (VERSIONED, versions[1])):
        df = client(served, label).fetch_custom(
            "MATCH (a:Neuron)-[r:ConnectsTo]->(b:Neuron) "
            "RETURN a.bodyId AS a, b.bodyId AS b, r.weight AS w")
        got = {(int(a), int(b)): int(w) for a, b, w in zip(df["a"], df["b"], df["w"],
                                                         strict=True)}
        assert got == {(a, b): d["weight"] for a, b, d in graph.edges(data=True)}


def test_fetch_synapses_equal_the_table(served: Served, hemibrain: Hemibrain) -> None:
    """Outputs as `pre` rows, inputs as `post` rows (the table has one position per synapse)."""
    c = client(served, HEMIBRAIN)
    syn = hemibrain.synapses
    body = int(syn["pre"].iloc[0])
    got = fetch_synapses(NeuronCriteria(bodyId=body), client=c)
    want = pd.concat([syn[syn["pre"] == body].assign(type="pre"),
                      syn[syn["post"] == body].assign(type="post")])
    key = ["x", "y", "z", "confidence"]

    def rows(df: pd.DataFrame) -> list[tuple]:
        values = df[key].astype(float).round(3).to_numpy()
        return sorted(zip(df["type"].astype(str), map(tuple, values), df["roi"], strict=True))

    assert rows(got) == rows(want)


def test_fetch_skeleton_equals_the_swc(served: Served, hemibrain: Hemibrain) -> None:
    c = client(served, HEMIBRAIN)
    for body, swc in list(hemibrain.skeletons.items())[:2]:
        skel = c.fetch_skeleton(body)
        got = skel[["rowId", "x", "y", "z", "radius", "link"]].to_numpy(dtype=float)
        want = swc[["node_id", "x", "y", "z", "radius", "parent_id"]].to_numpy(dtype=float)
        np.testing.assert_allclose(got[np.argsort(got[:, 0])], want[np.argsort(want[:, 0])],
                                   rtol=1e-6)


def test_neuron_roi_info_counts_the_table(served: Served, hemibrain: Hemibrain) -> None:
    neurons, rois = fetch_neurons(NeuronCriteria(), client=client(served, HEMIBRAIN))
    syn = hemibrain.synapses
    want = pd.concat([syn.groupby(["pre", "roi"]).size().rename("pre"),
                      syn.groupby(["post", "roi"]).size().rename("post")], axis=1).fillna(0)
    own = rois[rois["roi"] != "NotPrimary"]  # the client adds NotPrimary partner counts
    got = own.set_index(["bodyId", "roi"])[["pre", "post"]]
    want.index.names = ["bodyId", "roi"]
    pd.testing.assert_frame_equal(got.sort_index().astype(int), want.sort_index().astype(int),
                                  check_names=False)
    assert len(neurons) == len(set(syn["pre"]) | set(syn["post"]))


def _graphql(served: Served, query: str, variables: dict[str, str]) -> dict:
    r = httpx.post(f"{served.url}/graphql", json={"query": query, "variables": variables},
                      headers={"Authorization": f"Bearer {TOKEN}"}, verify=str(served.cert),
                      timeout=120)
    r.raise_for_status()
    doc = r.json()
    assert not doc.get("errors"), doc
    return doc["data"]


SKELETON_QUERY = """query($d: String!, $b: BodyId!) { neuron(dataset: $d, bodyId: $b) {
  skeleton { swc nodes { rowId x y z radius link } } } }"""


def test_graphql_skeleton_equals_the_swc(served: Served, hemibrain: Hemibrain) -> None:
    for body, swc in list(hemibrain.skeletons.items())[:2]:
        sk = _graphql(served, SKELETON_QUERY, {"d": HEMIBRAIN, "b": str(body)})["neuron"]
        got = np.array([[n[k] for k in ("rowId", "x", "y", "z", "radius", "link")]
                        for n in sk["skeleton"]["nodes"]], dtype=float)
        want = swc[["node_id", "x", "y", "z", "radius", "parent_id"]].to_numpy(dtype=float)
        np.testing.assert_allclose(got[np.argsort(got[:, 0])], want[np.argsort(want[:, 0])],
                                   rtol=1e-6)
        text = pd.read_csv(io.StringIO(sk["skeleton"]["swc"]), sep=r"\s+", comment="#",
                           header=None).to_numpy(dtype=float)
        np.testing.assert_allclose(text[:, [0, 2, 3, 4, 5, 6]], got, rtol=1e-6)
    # cook2019 is loaded without skeletons
    bare = _graphql(served, 'query { neuron(dataset: "cook2019", name: "AVAL") { bodyId '
                    'skeleton { swc } } }', {})["neuron"]
    assert bare["bodyId"] and bare["skeleton"] is None


def test_graphql_rois_count_the_table(served: Served, hemibrain: Hemibrain) -> None:
    rois = _graphql(served, "query($d: String!) { dataset(name: $d) { rois { name pre post } } }",
                    {"d": HEMIBRAIN})["dataset"]["rois"]
    per_roi = hemibrain.synapses.groupby("roi").size()
    assert per_roi.size > 1
    assert [r["name"] for r in rois] == sorted(per_roi.index)
    assert {r["name"]: r["pre"] for r in rois} == per_roi.to_dict()
    assert {r["name"]: r["post"] for r in rois} == per_roi.to_dict()
