"""Lists are complete: a neuron with thousands of partners and synapses, paged with `after:`,
against pandas over the synapse table it was loaded from; older versions through `version:`."""

from __future__ import annotations

from collections.abc import Iterator

import neo4j
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from connectome_query.graphdb.settings import Neo4jTarget
from connectome_query.graphql_api.app import create_app
from connectome_query.graphql_api.auth import AuthConfig
from connectome_query.ingest.loader import load
from connectome_query.ingest.sources import read_source
from tests.support.graphql import GraphQLClient
from tests.support.neuprint_files import write_neuprint

pytestmark = [pytest.mark.neo4j, pytest.mark.slow]

HUB_DATASET = "t_hub"
HUB = 10**15 + 7
PARTNERS = 2_600


@pytest.fixture(scope="module")
def hub_table(driver: neo4j.Driver, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """A CAVE table: PARTNERS cells each sending 1-4 synapses to HUB, HUB sending to 1,200."""
    rng = np.random.default_rng(3)
    senders = rng.choice(10**12, size=PARTNERS, replace=False) + 10**14
    counts = rng.integers(1, 5, size=PARTNERS)
    pre = np.repeat(senders, counts)
    targets = senders[:1200]
    out_counts = rng.integers(1, 4, size=len(targets))
    rows = pd.DataFrame({
        "pre_pt_root_id": np.concatenate([pre, np.full(out_counts.sum(), HUB)]),
        "post_pt_root_id": np.concatenate([np.full(len(pre), HUB),
                                           np.repeat(targets, out_counts)])})
    rows["id"] = np.arange(1, len(rows) + 1)
    rows["ctr_pt_position_x"] = rng.integers(0, 10_000, len(rows))
    rows["ctr_pt_position_y"] = rng.integers(0, 10_000, len(rows))
    rows["ctr_pt_position_z"] = rng.integers(0, 500, len(rows))
    path = tmp_path_factory.mktemp("hub") / "synapses.parquet"
    rows.to_parquet(path, index=False)
    load(driver, read_source(str(path)), HUB_DATASET)
    return rows


@pytest.fixture(scope="module")
def api(neo4j_target: Neo4jTarget, hub_table: pd.DataFrame) -> Iterator[GraphQLClient]:
    with TestClient(create_app(neo4j_target, auth=AuthConfig(required=False))) as client:
        yield GraphQLClient(client)


QUERY = """query($id: BodyId, $after: String) { neuron(dataset: "t_hub", bodyId: $id) {
  DIRECTION(first: 1000, after: $after) { weight cursor partner { bodyId } } } }"""


def all_pages(api: GraphQLClient, direction: str) -> tuple[list[tuple[int, int]], int]:
    listed: list[tuple[int, int]] = []
    after, pages = None, 0
    while True:
        page = api.data(QUERY.replace("DIRECTION", direction), id=str(HUB),
                        after=after)["neuron"][direction]
        pages += 1
        listed += [(int(c["partner"]["bodyId"]), c["weight"]) for c in page]
        if len(page) < 1000:
            return listed, pages
        after = page[-1]["cursor"]


@pytest.mark.parametrize(("direction", "mine", "theirs"), [
    ("upstream", "post_pt_root_id", "pre_pt_root_id"),
    ("downstream", "pre_pt_root_id", "post_pt_root_id"),
])
def test_every_partner_listed_once_in_order(api: GraphQLClient, hub_table: pd.DataFrame,
                                            direction: str, mine: str, theirs: str) -> None:
    listed, pages = all_pages(api, direction)
    want = hub_table[hub_table[mine] == HUB].groupby(theirs).size()
    assert dict(listed) == {int(k): int(v) for k, v in want.items()}
    assert len(listed) == len(want)  # nothing twice
    assert listed == sorted(listed, key=lambda bw: (-bw[1], bw[0]))
    assert pages == len(want) // 1000 + 1


def test_bad_cursor_is_an_error(api: GraphQLClient) -> None:
    body = api(QUERY.replace("DIRECTION", "upstream"), id=str(HUB), after="bm9wZQ==")
    assert "invalid cursor" in body["errors"][0]["message"]


SYNAPSES = """query($id: BodyId!, $side: SynapseSide!, $partner: BodyId, $after: String) {
  synapses(dataset: "t_hub", bodyId: $id, side: $side, partner: $partner, first: 1000,
           after: $after) {
    synapses { pre post synapse { synapseId location { x y z } } }
    pageInfo { hasNextPage endCursor } } }"""


def all_synapses(api: GraphQLClient, side: str, partner: int | None = None) -> list[tuple]:
    rows: list[tuple] = []
    after = None
    while True:
        page = api.data(SYNAPSES, id=str(HUB), side=side, after=after,
                        partner=None if partner is None else str(partner))["synapses"]
        rows += [(int(s["synapse"]["synapseId"]), int(s["pre"]), int(s["post"]),
                  s["synapse"]["location"]["x"], s["synapse"]["location"]["y"],
                  s["synapse"]["location"]["z"]) for s in page["synapses"]]
        if not page["pageInfo"]["hasNextPage"]:
            return rows
        after = page["pageInfo"]["endCursor"]


def table_rows(table: pd.DataFrame) -> list[tuple]:
    return [(int(r.id), int(r.pre_pt_root_id), int(r.post_pt_root_id),
             float(r.ctr_pt_position_x), float(r.ctr_pt_position_y), float(r.ctr_pt_position_z))
            for r in table.sort_values("id").itertuples()]


@pytest.mark.parametrize(("side", "column"), [("INPUT", "post_pt_root_id"),
                                              ("OUTPUT", "pre_pt_root_id")])
def test_synapses_of_a_neuron_equal_the_table(api: GraphQLClient, hub_table: pd.DataFrame,
                                              side: str, column: str) -> None:
    got = all_synapses(api, side)
    assert got == table_rows(hub_table[hub_table[column] == HUB])
    assert len(got) > 1000  # it took several pages


def test_synapses_of_a_connection_equal_the_table(api: GraphQLClient,
                                                  hub_table: pd.DataFrame) -> None:
    partner = int(hub_table["pre_pt_root_id"].iloc[0])
    got = all_synapses(api, "INPUT", partner)
    want = hub_table[(hub_table["post_pt_root_id"] == HUB)
                     & (hub_table["pre_pt_root_id"] == partner)]
    assert got == table_rows(want) and got


def test_older_version_through_graphql(api: GraphQLClient, driver: neo4j.Driver,
                                       tmp_path_factory: pytest.TempPathFactory) -> None:
    graphs = []
    for seed in (5, 6):
        folder = tmp_path_factory.mktemp(f"gql-versions{seed}")
        graphs.append(write_neuprint(folder, neurons=30, edges=60 * seed, gap=5, seed=seed))
        load(driver, read_source(str(folder)), "t_gql_versions")
    query = """query($v: Int, $id: BodyId) { neuron(dataset: "t_gql_versions", bodyId: $id,
        version: $v) { downstream(first: 1000) { weight partner { bodyId } } } }"""
    for version, graph in ((1, graphs[0]), (2, graphs[1]), (None, graphs[1])):
        body = max(graph.nodes, key=graph.out_degree)
        found = api.data(query, v=version, id=str(body))["neuron"]
        assert found is not None
        got = {int(c["partner"]["bodyId"]): c["weight"] for c in found["downstream"]}
        assert got == {b: d["weight"] for _, b, d in graph.out_edges(body, data=True)}
