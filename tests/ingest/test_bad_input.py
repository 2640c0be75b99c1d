"""Malformed input: a clear error naming file, row and column, and the database unchanged."""

from __future__ import annotations

from pathlib import Path

import neo4j
import pytest
from typer.testing import CliRunner

from connectome_query.cli.main import app
from connectome_query.ingest.errors import IngestError
from connectome_query.ingest.sources import read_source
from tests.support.fingerprint import graph_fingerprint

pytestmark = pytest.mark.neo4j

NEURONS = "bodyId,type,instance\n1,A,a1\n2,B,b1\n3,B,b2\n"
CONNS = "bodyId_pre,bodyId_post,weight\n1,2,5\n2,3,7\n3,1,2\n"


def write_dataset(folder: Path, neurons: str = NEURONS, conns: str | bytes = CONNS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "neurons.csv").write_text(neurons)
    if isinstance(conns, bytes):
        (folder / "connections.csv").write_bytes(conns)
    else:
        (folder / "connections.csv").write_text(conns)
    return folder


CASES = {
    "missing column": (NEURONS, "bodyId_pre,weight\n1,5\n", "connections.csv", None, "bodyId_post"),
    "non-numeric weight": (NEURONS, "bodyId_pre,bodyId_post,weight\n1,2,5\n2,3,lots\n",
                           "connections.csv", 3, "weight"),
    "negative weight": (NEURONS, "bodyId_pre,bodyId_post,weight\n1,2,-5\n",
                        "connections.csv", 2, "weight"),
    "duplicate ids": ("bodyId,type\n1,A\n2,B\n2,C\n", CONNS, "neurons.csv", 4, "bodyId"),
    "empty file": ("", CONNS, "neurons.csv", None, None),
    "header only": ("bodyId,type\n", CONNS, "neurons.csv", None, None),
    "unknown neuron": (NEURONS, "bodyId_pre,bodyId_post,weight\n1,2,5\n1,99,1\n",
                       "connections.csv", 3, "bodyId_post"),
    "fractional weight": (NEURONS, "bodyId_pre,bodyId_post,weight\n1,2,2.5\n",
                          "connections.csv", 2, "weight"),
    "ragged row": (NEURONS, "bodyId_pre,bodyId_post,weight\n1,2,5\n2,3\n",
                   "connections.csv", 3, None),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_reader_names_file_row_column(tmp_path: Path, case: str) -> None:
    neurons, conns, file, row, column = CASES[case]
    folder = write_dataset(tmp_path / case.replace(" ", "_"), neurons, conns)
    with pytest.raises(IngestError) as err:
        read_source(str(folder))
    assert Path(err.value.path).name == file
    assert err.value.row == row
    assert err.value.column == column
    assert file in str(err.value)


def test_wrong_encoding_names_the_line(tmp_path: Path) -> None:
    conns = b"bodyId_pre,bodyId_post,weight\n1,2,5\n2,3,7\n" + "3,1,2 caf\u00e9\n".encode(
        "latin-1")
    folder = write_dataset(tmp_path / "enc", conns=conns)
    with pytest.raises(IngestError) as err:
        read_source(str(folder))
    assert err.value.row == 4
    assert "utf-8" in err.value.message
    # The same file reads (and then fails on the value, not the bytes) with its real encoding.
    with pytest.raises(IngestError) as err2:
        read_source(str(folder), encoding="latin-1")
    assert err2.value.column == "weight"


def test_padded_and_odd_names_are_cleaned(tmp_path: Path) -> None:
    neurons = "bodyId , type ,instance\n 1 ,  A  ,  a 1 \n2,B\u00e9,b\t\n3,B,b2\n"
    tables = read_source(str(write_dataset(tmp_path / "pad", neurons=neurons)))
    n = tables.neurons.set_index("bodyId")
    assert n.loc[1, "type"] == "A" and n.loc[1, "instance"] == "a 1"
    assert n.loc[2, "type"] == "B\u00e9" and n.loc[2, "instance"] == "b"


@pytest.mark.parametrize("case", ["non-numeric weight", "duplicate ids", "unknown neuron"])
def test_cli_error_leaves_database_unchanged(
    tmp_path: Path, driver: neo4j.Driver, case: str
) -> None:
    runner = CliRunner()
    good = write_dataset(tmp_path / "good")
    ok = runner.invoke(app, ["ingest", str(good), "--dataset", "t_bad_input"])
    assert ok.exit_code == 0, ok.output
    before = graph_fingerprint(driver)
    neurons, conns, file, row, _ = CASES[case]
    bad = write_dataset(tmp_path / "bad", neurons, conns)
    result = runner.invoke(app, ["ingest", str(bad), "--dataset", "t_bad_input"])
    assert result.exit_code != 0
    assert file in result.output and (row is None or f"row {row}" in result.output)
    assert graph_fingerprint(driver) == before


def test_unknown_source_and_bad_dataset_name(tmp_path: Path) -> None:
    runner = CliRunner()
    r1 = runner.invoke(app, ["ingest", str(tmp_path / "nope"), "--dataset", "x"])
    assert r1.exit_code != 0 and "no such file" in r1.output
    r2 = runner.invoke(app, ["ingest", "cook2019", "--dataset", "bad name!"])
    assert r2.exit_code != 0 and "invalid dataset name" in r2.output


def test_empty_optional_fields_stay_null(tmp_path: Path) -> None:
    conns = ('bodyId_pre,bodyId_post,weight,roiInfo\n1,2,5,\n'
             '2,3,7,"{""LH"": {""pre"": 7, ""post"": 7}}"\n')
    folder = write_dataset(tmp_path / "nulls", neurons="bodyId,type,instance\n1,A,\n2,,b\n3,B,c\n",
                           conns=conns)
    tables = read_source(str(folder))
    n = tables.neurons.set_index("bodyId")
    assert n.loc[1, "instance"] is None and n.loc[2, "type"] is None
    rois = tables.connections.set_index(["bodyIdPre", "bodyIdPost"])["roiInfo"]
    assert not isinstance(rois.loc[(1, 2)], str)
    assert rois.loc[(2, 3)].startswith('{"LH"')


@pytest.mark.parametrize("value", ["inf", "1e400", "99999999999999999999", "NaN"])
def test_integers_out_of_int64_range_are_named(tmp_path: Path, value: str) -> None:
    conns = f"bodyId_pre,bodyId_post,weight\n1,2,5\n2,3,{value}\n"
    folder = write_dataset(tmp_path / "big", conns=conns)
    with pytest.raises(IngestError) as err:
        read_source(str(folder))
    assert (err.value.row, err.value.column) == (3, "weight")
