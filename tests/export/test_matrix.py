"""Matrix export over HTTP, checked against networkx/pandas readings of the raw files."""

from __future__ import annotations

import io
from collections import defaultdict
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from tests.support.celegans import (
    cook_chemical_graph,
    cook_edges,
    cook_gap_junctions,
    varshney_rows,
)
from tests.support.export_synth import ROIS, SYNTH, SynthSet
from tests.support.readback import Edges, edges_of, read_back

pytestmark = pytest.mark.neo4j

FORMATS = ("csv", "parquet", "arrow", "npz", "mtx")


def export(api: TestClient, **params: Any) -> bytes:
    response = api.get("/export/matrix", params=params)
    assert response.status_code == 200, response.text
    return response.content


def names_by_id(api: TestClient, dataset: str) -> dict[int, str]:
    table = pd.read_parquet(io.BytesIO(api.get("/export/neurons", params={
        "dataset": dataset}).content))
    return dict(zip(table["bodyId"].astype(int), table["instance"], strict=True))


def renamed(edges: Edges, names: dict[int, str]) -> Edges:
    return {(names[a], names[b]): w for (a, b), w in edges.items()}  # type: ignore[index]


# -- C. elegans ----------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["npz", "parquet"])
def test_cook_chemical_equals_networkx(api: TestClient, fmt: str) -> None:
    g = cook_chemical_graph()
    raw = cook_edges()
    names = names_by_id(api, "cook2019")
    got, labels = read_back(fmt, export(api, dataset="cook2019", format=fmt, minWeight=0))
    assert renamed(got, names) == edges_of(g)
    if labels is not None:  # the matrix has a row for every cell, connected or not
        assert {names[i] for i in labels} == set(raw["Source"]) | set(raw["Target"])


def test_cook_electrical_is_symmetric_and_equals_raw(api: TestClient) -> None:
    names = names_by_id(api, "cook2019")
    got, _ = read_back("npz", export(api, dataset="cook2019", format="npz",
                                     synapseType="electrical", minWeight=0))
    expected: Edges = {}
    for pair, w in cook_gap_junctions().items():
        a, b = (tuple(pair) * 2)[:2]
        expected[(a, b)] = expected[(b, a)] = w
    assert renamed(got, names) == expected
    assert all(got[(b, a)] == w for (a, b), w in got.items())


def test_varshney_chemical_and_electrical(api: TestClient) -> None:
    names = names_by_id(api, "varshney2011")
    rows = varshney_rows()
    send = rows[rows["Type"].isin(["S", "Sp"])].groupby(["Neuron 1", "Neuron 2"])["Nbr"].sum()
    expected = {(a, b): int(w) for (a, b), w in send.items()}
    got, _ = read_back("arrow", export(api, dataset="varshney2011", format="arrow", minWeight=0))
    assert renamed(got, names) == expected
    ej = rows[rows["Type"] == "EJ"]
    best: dict[frozenset[str], int] = defaultdict(int)
    for a, b, w in zip(ej["Neuron 1"], ej["Neuron 2"], ej["Nbr"], strict=True):
        best[frozenset((a, b))] = max(best[frozenset((a, b))], int(w))
    sym = {}
    for pair, w in best.items():
        a, b = (tuple(pair) * 2)[:2]
        sym[(a, b)] = sym[(b, a)] = w
    got, _ = read_back("csv", export(api, dataset="varshney2011", format="csv", minWeight=0,
                                     synapseType="electrical"))
    assert renamed(got, names) == sym


# -- synthetic: every format, every filter ------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_round_trips(api: TestClient, synth: SynthSet, fmt: str) -> None:
    got, labels = read_back(fmt, export(api, dataset=SYNTH, format=fmt, minWeight=0))
    assert got == edges_of(synth.chemical(min_weight=0))
    if labels is not None:
        assert labels == sorted(synth.neurons["bodyId"].astype(int))


@pytest.mark.parametrize("fmt", ["parquet", "npz"])
def test_electrical_round_trips_symmetric(api: TestClient, synth: SynthSet, fmt: str) -> None:
    got, _ = read_back(fmt, export(api, dataset=SYNTH, format=fmt, synapseType="electrical"))
    assert got == edges_of(synth.electrical())
    assert any(a == b for a, b in got)  # the self-coupled cell is on the diagonal once


def test_min_weight_filter(api: TestClient, synth: SynthSet) -> None:
    for w in (1, 5):
        got, _ = read_back("parquet", export(api, dataset=SYNTH, minWeight=w))
        assert got == edges_of(synth.chemical(min_weight=w))
    got, _ = read_back("parquet", export(api, dataset=SYNTH, minWeight=3,
                                         synapseType="electrical"))
    assert got == edges_of(synth.electrical(min_weight=3))


def test_body_id_filter_is_the_induced_submatrix(api: TestClient, synth: SynthSet) -> None:
    ids = sorted(synth.neurons["bodyId"].astype(int))[::7]
    full = synth.chemical()
    got, labels = read_back("npz", export(api, dataset=SYNTH, format="npz",
                                          bodyIds=",".join(map(str, ids))))
    assert labels == ids
    assert got == edges_of(full.subgraph(ids))
    # POST with a JSON body gives the same
    response = api.post("/export/matrix", json={"dataset": SYNTH, "bodyIds": ids,
                                                "format": "npz"})
    assert response.status_code == 200
    assert read_back("npz", response.content)[0] == got


def test_type_filter(api: TestClient, synth: SynthSet) -> None:
    types = synth.types()
    keep = {"T01", "T03"}
    ids = [b for b, t in types.items() if t in keep]
    got, labels = read_back("mtx", export(api, dataset=SYNTH, format="mtx",
                                          types=sorted(keep)))
    assert labels == sorted(ids)
    assert got == edges_of(synth.chemical().subgraph(ids))


def test_roi_filter_counts_only_synapses_in_those_rois(api: TestClient, synth: SynthSet) -> None:
    for rois in ({"A"}, {"B", "C"}):
        got, _ = read_back("parquet", export(api, dataset=SYNTH, rois=sorted(rois)))
        assert got == edges_of(synth.chemical(rois=rois))
    got_all, _ = read_back("parquet", export(api, dataset=SYNTH, rois=list(ROIS)))
    plain, _ = read_back("parquet", export(api, dataset=SYNTH))
    assert sum(got_all.values()) < sum(plain.values())  # some synapses lie outside every ROI


@pytest.mark.parametrize("fmt", ["csv", "npz", "mtx"])
def test_type_collapsed_equals_pandas_groupby(api: TestClient, synth: SynthSet, fmt: str) -> None:
    types = {b: (t or "(untyped)") for b, t in synth.types().items()}
    edges = pd.DataFrame([(types[a], types[b], w) for (a, b), w in
                          edges_of(synth.chemical()).items()], columns=["a", "b", "w"])
    expected = {(a, b): int(w) for (a, b), w in edges.groupby(["a", "b"])["w"].sum().items()}
    got, labels = read_back(fmt, export(api, dataset=SYNTH, format=fmt, level="type"),
                            by_type=True)
    assert got == expected
    if labels is not None:
        assert labels == sorted(set(types.values()))


def test_neuron_metadata_table_and_npz_embedding(api: TestClient, synth: SynthSet) -> None:
    raw = synth.neurons.sort_values("bodyId").reset_index(drop=True)
    for fmt in ("csv", "parquet", "arrow"):
        response = api.get("/export/neurons", params={"dataset": SYNTH, "format": fmt})
        assert response.status_code == 200
        buf = io.BytesIO(response.content)
        if fmt == "csv":
            table = pd.read_csv(buf)
        elif fmt == "parquet":
            table = pd.read_parquet(buf)
        else:
            table = pa.ipc.open_stream(buf).read_all().to_pandas()
        assert table["bodyId"].tolist() == raw["bodyId"].tolist()
        assert table["instance"].tolist() == raw["instance"].tolist()
    data = export(api, dataset=SYNTH, format="npz", neurons="true")
    arrays = np.load(io.BytesIO(data))
    assert arrays["neurons_bodyId"].tolist() == arrays["row_ids"].tolist()
    assert arrays["neurons_type"].tolist() == raw["type"].fillna("").tolist()
    pre_out = synth.chemical().out_degree(weight="weight")
    assert arrays["neurons_pre"].tolist() == [pre_out[b] for b in raw["bodyId"]]


# -- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("params", "status", "words"), [
    ({"dataset": "no_such_set"}, 404, "unknown dataset"),
    ({"dataset": "bad name!"}, 400, "invalid dataset name"),
    ({"dataset": SYNTH, "format": "xlsx"}, 400, "unknown format"),
    ({"dataset": SYNTH, "minWeight": -1}, 400, "minWeight must be >= 0"),
    ({"dataset": SYNTH, "synapseType": "magic"}, 400, "unknown synapse type"),
    ({"dataset": SYNTH, "level": "class"}, 400, "unknown level"),
    ({"dataset": SYNTH, "bodyIds": "12,x"}, 400, "bodyIds must be integers"),
    ({"dataset": SYNTH, "bodyIds": "1"}, 404, "unknown bodyIds"),
    ({"dataset": SYNTH, "types": "NoSuchType"}, 404, "unknown types"),
    ({"dataset": SYNTH, "rois": "A", "synapseType": "electrical"}, 400, "ROI"),
])
def test_bad_parameters_are_clear_4xx(api: TestClient, params: dict[str, Any], status: int,
                                      words: str) -> None:
    response = api.get("/export/matrix", params=params)
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]


def test_requests_over_the_cap_are_413(api: TestClient, synth: SynthSet,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    n_edges = len(edges_of(synth.chemical()))
    monkeypatch.setenv("CONNECTOME_EXPORT_MAX_EDGES", str(n_edges - 1))
    response = api.get("/export/matrix", params={"dataset": SYNTH})
    assert response.status_code == 413
    assert "CONNECTOME_EXPORT_MAX_EDGES" in response.json()["detail"]
    # a filtered request under the cap still works
    assert api.get("/export/matrix", params={"dataset": SYNTH, "minWeight": 50}).status_code == 200
    monkeypatch.setenv("CONNECTOME_EXPORT_MAX_EDGES", str(n_edges))
    assert api.get("/export/matrix", params={"dataset": SYNTH}).status_code == 200
    monkeypatch.setenv("CONNECTOME_EXPORT_MAX_NEURONS", "10")
    response = api.get("/export/matrix", params={"dataset": SYNTH})
    assert response.status_code == 413
    assert "neurons" in response.json()["detail"]
