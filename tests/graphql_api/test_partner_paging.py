"""Partner lists are complete: a neuron with thousands of partners, paged with `after:`, against
pandas over the synapse table it was loaded from."""

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
