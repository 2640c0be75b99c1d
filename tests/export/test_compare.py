"""`connectome compare` and `compareDatasets` on two Witvliet stages against a pandas diff of the
raw spreadsheets cect ships, plus the comparison's refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import neo4j
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from connectome_query.cli.main import app
from connectome_query.export.compare import (
    CompareRequest,
    Side,
    compare,
    read_mapping,
    read_side,
)
from connectome_query.export.request import ExportError
from connectome_query.graphdb.reads import read_records
from connectome_query.ingest.readers.cect_published import PUBLISHED, cect_root
from connectome_query.ingest.sources import read_source
from tests.support.graph import current_key

runner = CliRunner()
EARLY, LATE = "t_witvliet1", "t_witvliet8"


def _raw(name: str) -> pd.DataFrame:
    return pd.read_excel(cect_root() / PUBLISHED[name].file)


def _pandas_diff(kind: str) -> pd.DataFrame:
    a, b = _raw("witvliet2020_1"), _raw("witvliet2020_8")
    frames = []
    for frame in (a, b):
        f = frame[frame["type"] == kind][["pre", "post", "synapses"]]
        if kind == "electrical":
            lo = np.where(f["pre"] <= f["post"], f["pre"], f["post"])
            hi = np.where(f["pre"] <= f["post"], f["post"], f["pre"])
            f = pd.DataFrame({"pre": lo, "post": hi, "synapses": f["synapses"].to_numpy()})
            f = f.groupby(["pre", "post"], as_index=False)["synapses"].max()
        frames.append(f)
    return frames[0].merge(frames[1], on=["pre", "post"], how="outer",
                           suffixes=("A", "B")).fillna(0)


@pytest.fixture(scope="module")
def stages(driver: neo4j.Driver) -> None:
    from connectome_query.ingest.loader import load

    load(driver, read_source("witvliet2020_1"), EARLY)
    load(driver, read_source("witvliet2020_8"), LATE)


def _compare(driver: neo4j.Driver, kind: str, **kw: Any) -> Any:
    req = CompareRequest(a=EARLY, b=LATE, synapse_type=kind, **kw).check()

    def read(cypher: str, params: dict) -> list:
        return [r.data() for r in read_records(driver, cypher, params, database="neo4j",
                                               timeout=60)]
    sides = [read_side(read, current_key(driver, n), n, req, 10**6) for n in (EARLY, LATE)]
    return compare(sides[0], sides[1], req)


@pytest.mark.neo4j
@pytest.mark.parametrize("kind", ["chemical", "electrical"])
def test_compare_equals_pandas_diff(driver: neo4j.Driver, stages: None, kind: str) -> None:
    want = _pandas_diff(kind)
    got = _compare(driver, kind)
    mine = {(r.pre, r.post): (r.weightA, r.weightB) for r in got.edges.itertuples()}
    theirs = {(r.pre, r.post): (int(r.synapsesA), int(r.synapsesB)) for r in want.itertuples()}
    assert mine == theirs
    both = want[(want["synapsesA"] > 0) & (want["synapsesB"] > 0)]
    assert got.summary["both"] == len(both)
    assert got.summary["onlyA"] == int((want["synapsesB"] == 0).sum())
    assert got.summary["onlyB"] == int((want["synapsesA"] == 0).sum())
    assert got.summary["stronger"] == int((both["synapsesB"] > both["synapsesA"]).sum())
    assert got.summary["correlationShared"] == pytest.approx(
        np.corrcoef(both["synapsesA"], both["synapsesB"])[0, 1])
    raw_a, raw_b = _raw("witvliet2020_1"), _raw("witvliet2020_8")
    cells_a = set(raw_a["pre"]) | set(raw_a["post"])
    cells_b = set(raw_b["pre"]) | set(raw_b["post"])
    assert set(got.matched) == cells_a & cells_b
    assert set(got.only_b_neurons) == cells_b - cells_a


@pytest.mark.neo4j
def test_type_summary_sums_the_connections(driver: neo4j.Driver, stages: None) -> None:
    got = _compare(driver, "chemical")
    types = read_source("witvliet2020_8").neurons.set_index("instance")["type"]
    early = read_source("witvliet2020_1").neurons.set_index("instance")["type"]
    type_of = {**types.to_dict(), **early.to_dict()}  # A's types win
    raw = _raw("witvliet2020_8")
    raw = raw[raw["type"] == "chemical"]
    want = raw.assign(preType=raw["pre"].map(type_of), postType=raw["post"].map(type_of)
                      ).groupby(["preType", "postType"])["synapses"].sum()
    have = got.types.set_index(["preType", "postType"])["weightB"]
    assert have[have > 0].sort_index().to_dict() == want.sort_index().to_dict()


@pytest.mark.neo4j
def test_cli_and_graphql_agree(driver: neo4j.Driver, stages: None, api: TestClient,
                               tmp_path: Path) -> None:
    result = runner.invoke(app, ["compare", EARLY, LATE, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = pd.read_csv(tmp_path / "connections.csv")
    want = _pandas_diff("chemical")
    assert len(written) == len(want)
    assert int(written["change"].sum()) == int((want["synapsesB"] - want["synapsesA"]).sum())
    query = """query($a: String!, $b: String!) { compareDatasets(a: $a, b: $b, first: 5) {
        inBoth onlyA onlyB correlation changes { pre post weightA weightB change } } }"""
    response = api.post("/graphql", json={"query": query, "variables": {"a": EARLY, "b": LATE}})
    body = response.json()
    assert "errors" not in body, body
    field = body["data"]["compareDatasets"]
    got = _compare(driver, "chemical")
    assert field["inBoth"] == got.summary["both"]
    assert field["onlyA"] == got.summary["onlyA"]
    biggest = (want["synapsesB"] - want["synapsesA"]).abs().max()
    assert abs(field["changes"][0]["change"]) == int(biggest)
    bad = runner.invoke(app, ["compare", EARLY, "t_no_such_dataset"])
    assert bad.exit_code != 0 and "t_no_such_dataset" in bad.output


def _side(names: list[str | None], edges: list[tuple[int, int, int]]) -> Side:
    neurons = pd.DataFrame({"bodyId": np.arange(1, len(names) + 1), "name": names,
                            "type": [None] * len(names)})
    return Side(neurons, pd.DataFrame(edges, columns=["pre", "post", "weight"]))


def test_names_must_identify_neurons() -> None:
    twice = _side(["AVAL", "AVAL"], [(1, 2, 3)])
    once = _side(["AVAL", "AVAR"], [(1, 2, 3)])
    with pytest.raises(ExportError, match="AVAL"):
        compare(twice, once, CompareRequest(a="x", b="y"))
    unnamed = _side([None, "AVAR"], [(1, 2, 3)])
    with pytest.raises(ExportError, match="bodyId"):
        compare(unnamed, once, CompareRequest(a="x", b="y"))
    by_id = compare(unnamed, once, CompareRequest(a="x", b="y", match="bodyId"))
    assert by_id.summary["both"] == 1
    padded = compare(_side(["AS01", "VC04"], [(1, 2, 3)]), _side(["AS1", "VC4"], [(1, 2, 5)]),
                     CompareRequest(a="x", b="y", match="cell"))
    assert padded.summary["both"] == 1 and padded.matched == ["AS1", "VC4"]
    mapped = compare(_side(["AVAL", "AVBL"], [(1, 2, 3)]), once,
                     CompareRequest(a="x", b="y", mapping={"AVBL": "AVAR"}))
    assert mapped.summary["both"] == 1 and mapped.summary["onlyA"] == 0


def test_mapping_file_errors_name_the_row(tmp_path: Path) -> None:
    path = tmp_path / "map.csv"
    path.write_text("a,b\nAVAL,AVAL\nDD01,DD1\nDD01,DD2\n")
    with pytest.raises(ExportError, match="row 4, column 'a'"):
        read_mapping(str(path))
    path.write_text("from,to\nA,B\n")
    with pytest.raises(ExportError, match="missing required column 'a'"):
        read_mapping(str(path))
    path.write_text("a,b\nAVAL,AVAL\nDD01,DD1\n")
    assert read_mapping(str(path)) == {"AVAL": "AVAL", "DD01": "DD1"}
    with pytest.raises(ExportError, match="synapseType"):
        CompareRequest(a="x", b="y", synapse_type="glutamate").check()
