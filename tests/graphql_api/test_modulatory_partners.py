"""Neuromodulator partners through GraphQL (`upstream`/`downstream` with `kind:`), checked against
pandas over cect's raw pathway files: Bentley 2016's monoamine list and Ripoll-Sanchez 2023's
mid-range neuropeptide matrix, each its own dataset under the files' own cell names; chemical
partners stay the default, checked on Cook 2019 loaded with its neuromodulators."""

from __future__ import annotations

from collections.abc import Iterator

import neo4j
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from connectome_query.graphdb.settings import Neo4jTarget
from connectome_query.graphql_api.app import create_app
from connectome_query.ingest.loader import load
from connectome_query.ingest.readers.celegans import cect_data_dir
from connectome_query.ingest.sources import read_source
from tests.support.graphql import GraphQLClient

pytestmark = pytest.mark.neo4j
DATASET = "t_modpartners"
SOURCES = {DATASET: "cook2019_neuromodulators", "t_modpartners_ma": "bentley2016_monoamine",
           "t_modpartners_np": "ripollsanchez2023_mid"}

PARTNERS = """
query($d: String!, $n: String!, $kind: PartnerKind!, $after: String) {
  neuron(dataset: $d, name: $n) {
    upstream(kind: $kind, first: 1000) { weight partner { instance } }
    downstream(kind: $kind, first: 7, after: $after) { weight cursor partner { instance } }
  }
}"""


@pytest.fixture(scope="module")
def api(driver: neo4j.Driver, neo4j_target: Neo4jTarget) -> Iterator[GraphQLClient]:
    for name, source in SOURCES.items():
        load(driver, read_source(source), name)
    with TestClient(create_app(neo4j_target)) as client:
        yield GraphQLClient(client)


def _monoamine() -> pd.DataFrame:
    raw = pd.read_csv(cect_data_dir() / "edgelist_MA.csv", header=None,
                      names=["pre", "post", "transmitter", "receptor"])
    return raw.groupby(["pre", "post"]).size().rename("weight").reset_index()


def _neuropeptide() -> pd.DataFrame:
    m = pd.read_csv(cect_data_dir() / "01022024_neuropeptide_connectome_mid_range_model.csv"
                    ).set_index("Row").stack()
    return m[m > 0].rename_axis(["pre", "post"]).rename("weight").reset_index()


def _all_downstream(api: GraphQLClient, dataset: str, name: str, kind: str) -> dict[str, int]:
    """Every downstream partner, a page of 7 at a time through the cursors."""
    got: dict[str, int] = {}
    after = None
    while True:
        page = api.data(PARTNERS, d=dataset, n=name, kind=kind, after=after)["neuron"][
            "downstream"]
        got.update({p["partner"]["instance"]: p["weight"] for p in page})
        if len(page) < 7:
            return got
        after = page[-1]["cursor"]


@pytest.mark.parametrize(("dataset", "kind", "raw"), [
    ("t_modpartners_ma", "MONOAMINE", _monoamine),
    ("t_modpartners_np", "NEUROPEPTIDE", _neuropeptide)])
def test_modulatory_partners_match_pandas(api: GraphQLClient, dataset: str, kind: str,
                                          raw: object) -> None:
    edges = raw()  # type: ignore[operator]
    hubs = [edges.groupby("pre")["weight"].sum().idxmax(),
            edges.groupby("post")["weight"].sum().idxmax(), edges["pre"].iloc[len(edges) // 2]]
    for name in hubs:
        answer = api.data(PARTNERS, d=dataset, n=name, kind=kind, after=None)["neuron"]
        ups = answer["upstream"]
        want_up = edges[edges["post"] == name].set_index("pre")["weight"].to_dict()
        assert {p["partner"]["instance"]: p["weight"] for p in ups} == want_up
        weights = [p["weight"] for p in ups]
        assert weights == sorted(weights, reverse=True)
        want_down = edges[edges["pre"] == name].set_index("post")["weight"].to_dict()
        assert _all_downstream(api, dataset, name, kind) == want_down
        other = "NEUROPEPTIDE" if kind == "MONOAMINE" else "MONOAMINE"
        none = api.data(PARTNERS, d=dataset, n=name, kind=other, after=None)["neuron"]
        assert none == {"upstream": [], "downstream": []}


def test_chemical_stays_the_default(api: GraphQLClient) -> None:
    cook = pd.read_csv(cect_data_dir() / "herm_full_edgelist.csv")
    cook.columns = [c.strip() for c in cook.columns]
    chem = cook[cook["Type"].str.strip().str.lower() == "chemical"]
    chem = chem.assign(Source=chem["Source"].str.strip(), Target=chem["Target"].str.strip())
    name = chem["Source"].value_counts().idxmax()
    plain = api.data('query($d: String!, $n: String!) { neuron(dataset: $d, name: $n) { '
                     'downstream(first: 1000) { weight partner { instance } } } }',
                     d=DATASET, n=name)["neuron"]["downstream"]
    chemical = api.data(PARTNERS, d=DATASET, n=name, kind="CHEMICAL", after=None)
    want = chem[chem["Source"] == name].groupby("Target")["Weight"].sum().to_dict()
    assert {p["partner"]["instance"]: p["weight"] for p in plain} == want
    assert _all_downstream(api, DATASET, name, "CHEMICAL") == want
    assert chemical["neuron"]["upstream"]
