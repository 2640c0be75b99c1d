"""Circuit queries on a synapse table with planted chandelier and multi-synaptic circuits,
ingested through `connectome ingest`; every answer is recomputed with pandas."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import neo4j
import pandas as pd
import pytest
from typer.testing import CliRunner

from connectome_query.cli.main import app
from connectome_query.graphql_api.neuroglancer import parse_url
from tests.support import planted as pl
from tests.support.graph import current_key
from tests.support.graphql import GraphQLClient

pytestmark = pytest.mark.neo4j

DS = "t_planted"
SEG = "precomputed://gs://example-bucket/seg"
NEURON = "bodyId instance type"


@pytest.fixture(scope="module")
def truth(tmp_path_factory: pytest.TempPathFactory, neo4j_server: object,
          driver: neo4j.Driver) -> Iterator[pl.Planted]:
    data = pl.build()
    syn_path, neurons_path = pl.write(data, tmp_path_factory.mktemp("planted"))
    result = CliRunner().invoke(app, [
        "ingest", str(syn_path), "-d", DS, "--neurons", str(neurons_path),
        "--voxel-size", "4,4,40", "--chandelier-threshold", "0.5",
        "--chandelier-min-synapses", "10", "--neuroglancer-source", SEG])
    assert result.exit_code == 0, result.output
    yield data


def _ids(rows: list[dict[str, Any]], *keys: str) -> list[tuple[int, ...]]:
    return [tuple(int(r[k]["bodyId"]) for k in keys) for r in rows]


def test_meta_records_rule(truth: pl.Planted, driver: neo4j.Driver) -> None:
    rec = driver.execute_query("MATCH (m:Meta {dataset: $d}) RETURN m",
                               d=current_key(driver, DS)).records[0]["m"]
    assert rec["chandelierClassified"] is True
    assert rec["chandelierThreshold"] == 0.5 and rec["chandelierMinSynapses"] == 10
    assert "aisOutputFraction >= 0.5" in rec["chandelierRule"]
    assert rec["neuroglancerSource"] == SEG
    assert list(rec["voxelSizeNm"]) == list(pl.VOXEL_NM)


def test_chandelier_cells_match_pandas_and_planted(truth: pl.Planted,
                                                   gql: GraphQLClient) -> None:
    frac = pl.ais_fraction(truth.synapses)
    expected = set(frac[(frac["known"] >= 10) & (frac["fraction"] >= 0.5)].index.astype(int))
    assert expected == truth.chandeliers  # the decoy BC and the sparse cell stay out
    got: dict[int, float] = {}
    after = None
    while True:
        page = gql.data("""query($after: String) { chandelierCells(dataset: "t_planted",
            first: 4, after: $after) { totalCount cells { aisOutputFraction aisOutputSynapses
            neuron { bodyId } } pageInfo { hasNextPage endCursor } } }""",
                        after=after)["chandelierCells"]
        got |= {int(c["neuron"]["bodyId"]): c["aisOutputFraction"] for c in page["cells"]}
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert set(got) == expected and page["totalCount"] == len(expected)
    for body, value in got.items():
        assert value == pytest.approx(frac.loc[body, "fraction"])


def test_chandelier_targets_batched_in_one_query(truth: pl.Planted, gql: GraphQLClient,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from connectome_query.graphql_api import db

    calls: list[str] = []
    real = db.read

    async def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[1])
        return await real(*args, **kwargs)

    monkeypatch.setattr(db, "read", counting)
    data = gql.data("""{ chandelierCells(dataset: "t_planted") { cells { neuron { bodyId }
        targets(first: 100) { synapseCount neuron { bodyId } } } } }""")["chandelierCells"]
    batched = [c for c in calls if "UNWIND $keys" in c]
    assert len(batched) == 1, "AIS targets of all chandelier cells must come in one query"
    s = truth.synapses
    ais = s[s["compartment"] == "ais"].groupby(["pre", "post"]).size()
    for cell in data["cells"]:
        pre = int(cell["neuron"]["bodyId"])
        got = [(t["synapseCount"], int(t["neuron"]["bodyId"])) for t in cell["targets"]]
        expected = sorted(((int(n), int(b)) for b, n in ais.loc[pre].items()),
                          key=lambda t: (-t[0], t[1]))
        assert got == expected


def test_chandelier_innervation_paged(truth: pl.Planted, gql: GraphQLClient) -> None:
    s = truth.synapses
    ais = s[(s["compartment"] == "ais") & s["pre"].isin(truth.chandeliers)]
    expected = {pair: sorted(g["id"].astype(int)) for pair, g in ais.groupby(["pre", "post"])}
    got: dict[tuple[int, int], list[int]] = {}
    order: list[tuple[int, int]] = []
    after = None
    while True:
        page = gql.data("""query($after: String) { chandelierInnervation(dataset: "t_planted",
            first: 7, after: $after) { contacts { synapseCount pre { bodyId } post { bodyId }
            synapses { synapseId compartment location { x y z } } }
            pageInfo { hasNextPage endCursor } } }""", after=after)["chandelierInnervation"]
        for c in page["contacts"]:
            pair = (int(c["pre"]["bodyId"]), int(c["post"]["bodyId"]))
            got[pair] = [int(x["synapseId"]) for x in c["synapses"]]
            order.append(pair)
            assert c["synapseCount"] == len(c["synapses"])
            assert {x["compartment"] for x in c["synapses"]} == {"ais"}
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert got == expected
    assert order == sorted(order)


def test_chandelier_inputs_of_a_pyramidal_cell(truth: pl.Planted, gql: GraphQLClient) -> None:
    s = truth.synapses
    ais = s[(s["compartment"] == "ais") & s["pre"].isin(truth.chandeliers)]
    target = int(ais["post"].value_counts().index[0])
    expected = ais[ais["post"] == target].groupby("pre").size()
    data = gql.data("""query($post: BodyId!) { chandelierInnervation(dataset: "t_planted",
        post: $post) { contacts { synapseCount pre { bodyId } post { bodyId } } } }""",
                    post=str(target))["chandelierInnervation"]["contacts"]
    assert {int(c["pre"]["bodyId"]): c["synapseCount"] for c in data} == {
        int(k): int(v) for k, v in expected.items()}
    assert {int(c["post"]["bodyId"]) for c in data} == {target}
    pre = int(expected.index[0])
    one = gql.data("""query($pre: BodyId!, $post: BodyId!) { chandelierInnervation(
        dataset: "t_planted", pre: $pre, post: $post) { contacts { synapseCount } } }""",
                   pre=str(pre), post=str(target))["chandelierInnervation"]["contacts"]
    assert [c["synapseCount"] for c in one] == [int(expected.loc[pre])]


def test_chandelier_to_chandelier(truth: pl.Planted, gql: GraphQLClient) -> None:
    s = truth.synapses
    cc = s[(s["compartment"] == "ais") & s["pre"].isin(truth.chandeliers)
           & s["post"].isin(truth.chandeliers)].groupby(["pre", "post"]).size()
    data = gql.data("""{ chandelierInnervation(dataset: "t_planted", postChandelier: true,
        minSynapses: 2) { contacts { synapseCount postIsChandelier pre { bodyId }
        post { bodyId } } } }""")["chandelierInnervation"]["contacts"]
    got = {(int(c["pre"]["bodyId"]), int(c["post"]["bodyId"])): c["synapseCount"] for c in data}
    assert got == {(int(a), int(b)): int(n) for (a, b), n in cc.items() if n >= 2}
    assert len(got) >= 3 and all(c["postIsChandelier"] for c in data)


@pytest.mark.parametrize(("k", "compartment", "pre_type"), [
    (6, None, None), (3, "DENDRITE", None), (2, None, "PYR"), (4, "AIS", "CHC")])
def test_multi_synaptic_contacts(truth: pl.Planted, gql: GraphQLClient, k: int,
                                 compartment: str | None, pre_type: str | None) -> None:
    s = truth.synapses.merge(truth.neurons[["bodyId", "type"]], left_on="pre",
                             right_on="bodyId")
    if compartment:
        s = s[s["compartment"] == compartment.lower()]
    if pre_type:
        s = s[s["type"] == pre_type]
    counts = s.groupby(["pre", "post"])["id"].apply(lambda x: sorted(int(v) for v in x))
    expected = {(int(a), int(b)): ids for (a, b), ids in counts.items() if len(ids) >= k}
    got: dict[tuple[int, int], list[int]] = {}
    after = None
    while True:
        page = gql.data("""query($k: Int!, $c: Compartment, $t: String, $after: String) {
            multiSynapticContacts(dataset: "t_planted", minSynapses: $k, compartment: $c,
            preType: $t, first: 5, after: $after, synapsesPerContact: 1000) { contacts {
            synapseCount pre { bodyId } post { bodyId } synapses { synapseId } }
            pageInfo { hasNextPage endCursor } } }""", k=k, c=compartment, t=pre_type,
                        after=after)["multiSynapticContacts"]
        for c in page["contacts"]:
            ids = [int(x["synapseId"]) for x in c["synapses"]]
            assert c["synapseCount"] == len(ids)
            got[(int(c["pre"]["bodyId"]), int(c["post"]["bodyId"]))] = ids
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert got == expected and expected
    if k == 6 and compartment is None:
        assert truth.multi_pairs <= set(got)


@pytest.mark.parametrize("compartment", [None, "SOMA"])
def test_synapses_per_connection_histogram(truth: pl.Planted, gql: GraphQLClient,
                                           compartment: str | None) -> None:
    s = truth.synapses
    if compartment:
        s = s[s["compartment"] == compartment.lower()]
    expected = s.groupby(["pre", "post"]).size().value_counts().sort_index()
    data = gql.data("""query($c: Compartment) { synapsesPerConnection(dataset: "t_planted",
        compartment: $c) { synapses connections } }""", c=compartment)["synapsesPerConnection"]
    assert {b["synapses"]: b["connections"] for b in data} == {
        int(k): int(v) for k, v in expected.items()}


@pytest.mark.parametrize(("direction", "roi", "compartment", "min_weight"), [
    ("DOWNSTREAM", None, None, 1), ("UPSTREAM", None, None, 2), ("DOWNSTREAM", "L23", None, 1),
    ("UPSTREAM", None, "AIS", 1), ("DOWNSTREAM", "L5", "DENDRITE", 1)])
def test_partners_by_type(truth: pl.Planted, gql: GraphQLClient, direction: str,
                          roi: str | None, compartment: str | None, min_weight: int) -> None:
    s = truth.synapses
    types = truth.neurons.set_index("bodyId")["type"]
    me, other = ("pre", "post") if direction == "DOWNSTREAM" else ("post", "pre")
    cell = int(s[me].value_counts().index[0]) if compartment != "AIS" else int(
        s[s["compartment"] == "ais"]["post"].value_counts().index[0])
    mine = s[s[me] == cell]
    if roi:
        mine = mine[mine["roi"] == roi]
    if compartment:
        mine = mine[mine["compartment"] == compartment.lower()]
    w = mine.groupby(other).size()
    w = w[w >= min_weight]
    frame = pd.DataFrame({"partner": w.index, "w": w.to_numpy()})
    frame["type"] = frame["partner"].map(types)
    expected = {t: (len(g), int(g["w"].sum()), dict(zip(g["partner"].astype(int), g["w"],
                                                        strict=True)))
                for t, g in frame.groupby("type")}
    data = gql.data("""query($id: BodyId!, $d: Direction!, $roi: String, $c: Compartment,
        $w: Int!) { partnersByType(dataset: "t_planted", neuron: {bodyId: $id}, direction: $d,
        roi: $roi, compartment: $c, minWeight: $w, partnersPerType: 1000) { type neurons
        synapses partners { weight partner { bodyId } } } }""", id=str(cell), d=direction,
                    roi=roi, c=compartment, w=min_weight)["partnersByType"]
    got = {g["type"]: (g["neurons"], g["synapses"], {int(p["partner"]["bodyId"]): p["weight"]
                                                     for p in g["partners"]}) for g in data}
    assert got == expected and got
    assert [g["synapses"] for g in data] == sorted((g["synapses"] for g in data), reverse=True)


def test_neuroglancer_link_for_a_synapse_set(truth: pl.Planted, gql: GraphQLClient) -> None:
    pair = next(iter(sorted(truth.multi_pairs)))
    s = truth.synapses
    mine = s[(s["pre"] == pair[0]) & (s["post"] == pair[1])].sort_values("id")
    data = gql.data("""query($a: BodyId!, $b: BodyId!) { neuroglancer(dataset: "t_planted",
        pre: $a, post: $b) { url synapseCount segments } }""", a=str(pair[0]),
                    b=str(pair[1]))["neuroglancer"]
    state = parse_url(data["url"])
    assert data["synapseCount"] == len(mine)
    seg = next(layer for layer in state["layers"] if layer["type"] == "segmentation")
    assert seg["source"] == SEG and seg["segments"] == [str(pair[0]), str(pair[1])]
    points = {a["id"]: a["point"] for layer in state["layers"] if layer["type"] == "annotation"
              for a in layer["annotations"]}
    for _, row in mine.iterrows():
        assert points[str(int(row["id"]))] == pytest.approx(
            [row["x"] / 4.0, row["y"] / 4.0, row["z"] / 40.0])
    assert state["dimensions"]["z"] == [pytest.approx(40e-9), "m"]


def test_neuroglancer_by_ids_and_no_volumes(truth: pl.Planted, gql: GraphQLClient) -> None:
    sid = int(truth.synapses["id"].iloc[0])
    body = int(truth.neurons["bodyId"].iloc[5])
    data = gql.data("""query($s: BodyId!, $b: BodyId!) { neuroglancer(dataset: "t_planted",
        synapseIds: [$s], bodyIds: [$b]) { url segments synapseCount } }""", s=str(sid),
                    b=str(body))["neuroglancer"]
    row = truth.synapses.iloc[0]
    assert data["segments"] == [str(body), str(int(row["pre"])), str(int(row["post"]))]
    body_err = gql('{ neuroglancer(dataset: "cook2019", bodyIds: ["1"]) { url } }')
    assert "no volumes" in body_err["errors"][0]["message"]
    bad = gql('{ neuroglancer(dataset: "t_planted", synapseIds: ["12"]) { url } }')
    assert "unknown synapse id" in bad["errors"][0]["message"]


def test_motif_with_node_constraints(truth: pl.Planted, gql: GraphQLClient) -> None:
    """chandelier -> pyramidal <- chandelier: two chandeliers sharing an AIS target."""
    s = truth.synapses
    w = s.groupby(["pre", "post"]).size()
    types = truth.neurons.set_index("bodyId")["type"]
    edges = {(int(a), int(b)) for (a, b), n in w.items() if n >= 2}
    chc = sorted(truth.chandeliers)
    expected = sorted((a, c, b) for a in chc for b in chc if a != b
                      for c in types.index[types == "PYR"].astype(int)
                      if (a, c) in edges and (b, c) in edges)
    data = gql.data("""{ motif(dataset: "t_planted", first: 1000,
        edges: [{source: "x", target: "p", minWeight: 2}, {source: "y", target: "p",
                 minWeight: 2}],
        nodes: [{name: "x", chandelier: true}, {name: "y", chandelier: true},
                {name: "p", type: "PYR"}]) { matches { nodes { name neuron { bodyId } } } } }""")
    got = sorted(tuple(int(b["neuron"]["bodyId"]) for b in m["nodes"])
                 for m in data["motif"]["matches"])
    assert got == expected and expected
