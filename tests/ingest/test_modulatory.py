"""Neuromodulator networks (Bentley 2016, Ripoll-Sanchez 2023) against pandas over cect's raw
files, through the loader into their own relationship types and out through export."""

from __future__ import annotations

from pathlib import Path

import neo4j
import numpy as np
import pandas as pd
import pytest

from connectome_query.export.matrix import collect
from connectome_query.export.matrix import prepare as plan_export
from connectome_query.export.request import MatrixRequest
from connectome_query.ingest.errors import IngestError
from connectome_query.ingest.loader import load
from connectome_query.ingest.modulatory import check_modulatory
from connectome_query.ingest.readers.cect_modulatory import (
    read_pathway_list,
    read_pathway_matrix,
)
from connectome_query.ingest.readers.celegans import cect_data_dir
from connectome_query.ingest.sources import read_source
from tests.support.graph import current_key

MA = "edgelist_MA.csv"
MID = "01022024_neuropeptide_connectome_mid_range_model.csv"


def _named(name: str) -> pd.DataFrame:
    tables = read_source(name)
    names = dict(zip(tables.neurons["bodyId"], tables.neurons["instance"], strict=True))
    m = tables.modulatory.copy()
    m["pre"], m["post"] = m["bodyIdPre"].map(names), m["bodyIdPost"].map(names)
    return m


def _raw_list(file: str) -> pd.DataFrame:
    return pd.read_csv(cect_data_dir() / file, header=None,
                       names=["pre", "post", "transmitter", "receptor"])


def _raw_matrix(file: str) -> pd.DataFrame:
    m = pd.read_csv(cect_data_dir() / file).set_index("Row")
    stacked = m.stack()
    stacked = stacked[stacked > 0]
    return stacked.rename_axis(["pre", "post"]).rename("weight").reset_index()


@pytest.mark.parametrize(("name", "file"), [("bentley2016_monoamine", MA),
                                            ("bentley2016_neuropeptide", "edgelist_NP.csv")])
def test_pathway_lists_match_pandas(name: str, file: str) -> None:
    raw = _raw_list(file)
    got = _named(name).set_index(["pre", "post"])
    per_pair = raw.groupby(["pre", "post"]).size()
    assert got["weight"].sort_index().to_dict() == per_pair.to_dict()
    hub = raw["pre"].value_counts().idxmax()
    for (pre, post), group in raw[raw["pre"] == hub].groupby(["pre", "post"]):
        row = got.loc[(pre, post)]
        assert sorted(zip(row["transmitters"], row["receptors"], strict=True)) == sorted(
            zip(group["transmitter"], group["receptor"], strict=True))
    assert set(read_source(name).neurons["instance"]) == set(raw["pre"]) | set(raw["post"])


@pytest.mark.parametrize("model", ["short", "mid", "long"])
def test_ripoll_sanchez_matrices_match_pandas(model: str) -> None:
    raw = _raw_matrix(f"01022024_neuropeptide_connectome_{model}_range_model.csv")
    got = _named(f"ripollsanchez2023_{model}")
    assert len(got) == len(raw)
    assert int(got["weight"].sum()) == int(raw["weight"].sum())
    hub = raw.groupby("pre")["weight"].sum().idxmax()
    assert got[got["pre"] == hub].set_index("post")["weight"].to_dict() == \
        raw[raw["pre"] == hub].set_index("post")["weight"].to_dict()


def test_bad_pathway_files_name_row_and_column(tmp_path: Path) -> None:
    path = tmp_path / "ma.csv"
    path.write_text("RIML,ALML,tyramine,lgc-55\nRIML,ALMR,tyramine\n")
    with pytest.raises(IngestError) as err:
        read_pathway_list(path, "monoamine")
    assert (err.value.row, err.value.column) == (2, "receptor")
    path.write_text("RIML,ALML,tyramine\n")
    with pytest.raises(IngestError, match="4 fields"):
        read_pathway_list(path, "monoamine")
    path.write_text("RIML,ALML,tyramine,lgc-55\nRIML,ALML,tyramine,lgc-55\n")
    with pytest.raises(IngestError, match="twice") as err:
        read_pathway_list(path, "monoamine")
    assert err.value.row == 2
    path.write_text("Row,A,B\nA,0,1\nB,x,0\n")
    with pytest.raises(IngestError) as err:
        read_pathway_matrix(path, "neuropeptide")
    assert (err.value.row, err.value.column) == (3, "A")
    path.write_text("Row,A,B\nA,0,1\nC,1,0\n")
    with pytest.raises(IngestError, match="square"):
        read_pathway_matrix(path, "neuropeptide")


def test_edges_to_unknown_neurons_are_refused() -> None:
    frame = pd.DataFrame({"bodyIdPre": [1, 2], "bodyIdPost": [2, 3], "kind": "monoamine",
                          "weight": [1, 1], "transmitters": None, "receptors": None})
    with pytest.raises(IngestError, match="not a neuron") as err:
        check_modulatory(frame, np.array([1, 2]), "edges")
    assert (err.value.row, err.value.column) == (2, "bodyIdPost")
    with pytest.raises(IngestError, match="not one of"):
        check_modulatory(frame.assign(kind="glutamate"), np.array([1, 2, 3]), "edges")


@pytest.mark.neo4j
def test_neuromodulators_beside_synapses_in_graph_and_export(driver: neo4j.Driver) -> None:
    load(driver, read_source("cook2019_neuromodulators"), "t_cookmod")
    key = current_key(driver, "t_cookmod")

    def total(rel: str) -> tuple[int, int]:
        records, _, _ = driver.execute_query(
            f"MATCH (:Neuron {{dataset: $k}})-[r:{rel}]->() RETURN count(r) AS n, "
            "sum(r.weight) AS w", k=key)
        return records[0]["n"], records[0]["w"]

    ma, mid = _raw_list(MA), _raw_matrix(MID)
    assert total("Monoamine") == (len(ma.groupby(["pre", "post"])), len(ma))
    assert total("Neuropeptide") == (len(mid), int(mid["weight"].sum()))
    cook = pd.read_csv(cect_data_dir() / "herm_full_edgelist.csv")
    chem = cook[cook["Type"].str.strip().str.lower() == "chemical"]
    assert total("ConnectsTo") == (len(chem), int(chem["Weight"].sum()))
    records, _, _ = driver.execute_query(
        "MATCH (m:Meta {dataset: $k}) RETURN m.monoamineConnections AS ma, "
        "m.neuropeptideConnections AS np", k=key)
    assert (records[0]["ma"], records[0]["np"]) == total("Monoamine")[0:1] + \
        total("Neuropeptide")[0:1]
    plan = plan_export(driver, MatrixRequest(dataset="t_cookmod", synapse_type="monoamine"))
    chunk, ids = collect(driver, plan)
    names = read_source("cook2019_neuromodulators").neurons.set_index("bodyId")["instance"]
    got = {(names[int(ids[r])], names[int(ids[c])]): int(w)
           for r, c, w in zip(chunk.rows, chunk.cols, chunk.weights, strict=True)}
    assert sum(got.values()) == len(ma)
    assert len(got) == len(ma.groupby(["pre", "post"]))
