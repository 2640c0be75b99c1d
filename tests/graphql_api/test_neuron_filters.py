"""`neurons` filters (minPre, minPost, instanceRegex, bodyIds, status) against pandas on the raw
Cook 2019 edge list, paged to the end."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.support import celegans as raw
from tests.support.graphql import GraphQLClient

pytestmark = pytest.mark.neo4j

QUERY = """query($after: String, $minPre: Int, $minPost: Int, $re: String, $ids: [BodyId!],
                 $status: String) {
  neurons(dataset: "cook2019", first: 50, after: $after, minPre: $minPre, minPost: $minPost,
          instanceRegex: $re, bodyIds: $ids, status: $status) {
    totalCount edges { node { bodyId instance } } pageInfo { hasNextPage endCursor } } }"""


def _all(gql: GraphQLClient, **filters: Any) -> dict[str, int]:
    """instance -> bodyId of every neuron the filters keep; totalCount checked."""
    found: dict[str, int] = {}
    after = None
    while True:
        page = gql.data(QUERY, after=after, **filters)["neurons"]
        found |= {e["node"]["instance"]: int(e["node"]["bodyId"]) for e in page["edges"]}
        if not page["pageInfo"]["hasNextPage"]:
            assert page["totalCount"] == len(found)
            return found
        after = page["pageInfo"]["endCursor"]


def test_min_pre_and_post_equal_the_edge_list(gql: GraphQLClient) -> None:
    chem = raw.cook_edges()
    chem = chem[chem["Type"] == "chemical"]
    out = chem.groupby("Source")["Weight"].sum()
    into = chem.groupby("Target")["Weight"].sum()
    assert set(_all(gql, minPre=100)) == set(out[out >= 100].index)
    assert set(_all(gql, minPost=100)) == set(into[into >= 100].index)
    both = set(_all(gql, minPre=50, minPost=50))
    assert both == set(out[out >= 50].index) & set(into[into >= 50].index)


def test_instance_regex_and_body_ids(gql: GraphQLClient) -> None:
    everyone = _all(gql)
    pattern = "AV[AB][LR]|RIA.*"
    assert set(_all(gql, re=pattern)) == {n for n in everyone if re.fullmatch(pattern, n)}
    chosen = sorted(everyone)[::40]
    ids = [str(everyone[n]) for n in chosen]
    assert set(_all(gql, ids=ids)) == set(chosen)
    assert set(_all(gql, ids=ids, re="A.*")) == {n for n in chosen if n.startswith("A")}
    assert _all(gql, status="no such status") == {}


def test_bad_regex_names_the_argument(gql: GraphQLClient) -> None:
    body = gql(QUERY, re="AV[")
    assert "instanceRegex" in body["errors"][0]["message"]
    assert body["errors"][0]["extensions"]["code"] == "bad_request"
