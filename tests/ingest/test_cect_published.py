"""Every built-in published C. elegans connectome against an independent read of cect's file
(pandas for edge lists, networkx for cect's matrices): totals, pairs and partner lists.

Deliberate differences from the papers' own counts: gap junctions are stored once per
unordered pair (the larger count where a file lists both directions), cells without any
connection in the file are not stored, and names stay as the file writes them (but for Cook
2020's two spellings of one cell, compared here case-blind). Where a paper's weights are not
whole numbers, `weight` is the value rounded up and `publishedWeight` the value itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from connectome_query.ingest.errors import IngestError
from connectome_query.ingest.readers.cect_published import (
    PUBLISHED,
    CectJson,
    EdgeTable,
    cect_root,
    read_cect_matrices,
    read_edge_list,
    read_published,
)
from connectome_query.ingest.sources import BUILTIN, builtin_descriptions, read_source

EDGE_LISTS = [n for n, p in PUBLISHED.items()
              if p.whole and all(isinstance(t, EdgeTable) and not t.columns for t in p.tables)]
MATRICES = [n for n, p in PUBLISHED.items() if isinstance(p.tables[0], CectJson)]


def _raw(name: str) -> pd.DataFrame:
    """The file as `pre`, `post`, `type`, `synapses`, names and types as the file writes them
    (but for blanks around names, which Cook's edge list has)."""
    spec = PUBLISHED[name].tables[0]
    assert isinstance(spec, EdgeTable) and spec.kind
    path = cect_root() / spec.file
    raw = (pd.read_excel(path) if path.suffix == ".xlsx" else
           pd.read_csv(path, sep=spec.sep, engine="python"))
    raw = raw.rename(columns={spec.pre: "pre", spec.post: "post", spec.kind: "type",
                              spec.weight: "synapses"})
    raw["pre"], raw["post"] = raw["pre"].str.strip(), raw["post"].str.strip()
    return raw


def _named(tables: object) -> pd.DataFrame:
    neurons = tables.neurons  # type: ignore[attr-defined]
    names = dict(zip(neurons["bodyId"], neurons["instance"], strict=True))
    conns = tables.connections.copy()  # type: ignore[attr-defined]
    conns["pre"] = conns["bodyIdPre"].map(names)
    conns["post"] = conns["bodyIdPost"].map(names)
    return conns


def _undirected_max(frame: pd.DataFrame, weight: str) -> dict[frozenset[str], int]:
    out: dict[frozenset[str], int] = {}
    for a, b, w in zip(frame["pre"], frame["post"], frame[weight], strict=True):
        key = frozenset((a, b))
        out[key] = max(out.get(key, 0), int(w))
    return out


@pytest.mark.parametrize("name", EDGE_LISTS)
def test_edge_list_matches_pandas(name: str) -> None:
    raw = _raw(name)
    got = _named(read_source(name))
    chem_raw = raw[raw["type"] == "chemical"]
    chem = got[got["kind"] == "chemical"]
    assert len(chem) == len(chem_raw)
    assert int(chem["weight"].sum()) == int(chem_raw["synapses"].sum())
    # partner lists of the cell with most chemical outputs, by weight
    top = chem_raw.groupby("pre")["synapses"].sum().idxmax()
    want = chem_raw[chem_raw["pre"] == top].set_index("post")["synapses"].to_dict()
    have = chem[chem["pre"] == top].set_index("post")["weight"].to_dict()
    assert have == want
    elec = got[got["kind"] == "electrical"]
    expected = _undirected_max(raw[raw["type"] == "electrical"], "synapses")
    assert {frozenset((a, b)): int(w) for a, b, w in
            zip(elec["pre"], elec["post"], elec["weight"], strict=True)} == expected
    cells = set(raw["pre"]) | set(raw["post"])
    assert set(read_source(name).neurons["instance"]) == cells


@pytest.mark.parametrize("name", MATRICES)
def test_cect_matrices_match_networkx(name: str) -> None:
    data = json.loads((cect_root() / PUBLISHED[name].file).read_text())
    nodes = data["nodes"]
    chem_graph = nx.from_numpy_array(np.array(data["connections"]["Generic_CS"]),
                                     create_using=nx.DiGraph, nodelist=nodes)
    gap_graph = nx.from_numpy_array(np.array(data["connections"]["Generic_GJ"]),
                                    nodelist=nodes)
    got = _named(read_source(name))
    chem = got[got["kind"] == "chemical"]
    assert len(chem) == chem_graph.number_of_edges()
    assert int(chem["weight"].sum()) == chem_graph.size(weight="weight")
    hub = max(chem_graph.nodes, key=lambda n: chem_graph.out_degree(n, weight="weight"))
    assert chem[chem["pre"] == hub].set_index("post")["weight"].to_dict() == {
        b: int(d["weight"]) for _, b, d in chem_graph.out_edges(hub, data=True)}
    elec = got[got["kind"] == "electrical"]
    assert len(elec) == gap_graph.number_of_edges()
    assert int(elec["weight"].sum()) == gap_graph.size(weight="weight")


def _cook2020_raw() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Supplementary tables 4 and 5, names lower-cased (the tables spell some cells both
    ways), repeated rows added: chemical edges and gap junctions per unordered pair."""
    data = cect_root() / "data"
    four = pd.read_csv(data / "cne24932-sup-0004-supinfo4.csv")
    five = pd.read_csv(data / "cne24932-sup-0005-supinfo5.csv").assign(Type="Electrical")
    raw = pd.concat([four, five], ignore_index=True)
    raw["Source"], raw["Target"] = raw["Source"].str.lower(), raw["Target"].str.lower()
    summed = raw.groupby(["Source", "Target", "Type"], as_index=False)["Weight"].sum()
    chem = summed[summed["Type"] == "Chemical"]
    gap = summed[summed["Type"] == "Electrical"]
    graph = nx.Graph()
    for a, b, w in zip(gap["Source"], gap["Target"], gap["Weight"], strict=True):
        if not graph.has_edge(a, b) or graph[a][b]["weight"] < w:
            graph.add_edge(a, b, weight=w)
    return chem, nx.to_pandas_edgelist(graph)


def test_cook2020_matches_pandas() -> None:
    chem_raw, gap_raw = _cook2020_raw()
    got = _named(read_source("cook2020_pharynx"))
    got["pre"], got["post"] = got["pre"].str.lower(), got["post"].str.lower()
    chem = got[got["kind"] == "chemical"]
    assert len(chem) == len(chem_raw)
    assert chem["publishedWeight"].sum() == pytest.approx(chem_raw["Weight"].sum())
    assert int(chem["weight"].sum()) == int(np.ceil(chem_raw["Weight"]).sum())
    assert (chem["weight"] >= chem["publishedWeight"]).all()
    for cell in ("i4", "m4", "nsml"):
        assert chem[chem["pre"] == cell].set_index("post")["publishedWeight"].to_dict() == \
            chem_raw[chem_raw["Source"] == cell].set_index("Target")["Weight"].to_dict()
    elec = got[got["kind"] == "electrical"]
    assert {frozenset((a, b)): int(w) for a, b, w in
            zip(elec["pre"], elec["post"], elec["weight"], strict=True)} == \
        {frozenset((a, b)): int(w) for a, b, w in
         zip(gap_raw["source"], gap_raw["target"], gap_raw["weight"], strict=True)}
    assert elec["publishedWeight"].isna().all()


@pytest.mark.parametrize("series", ["JSH", "N2U"])
def test_durbin1987_matches_pandas(series: str) -> None:
    raw = pd.read_csv(cect_root() / "data" / "neurodata_updated.txt", sep=r"\s+", comment="#",
                      header=None, names=["pre", "post", "type", "series", "n"])
    raw = raw[raw["series"] == series]
    sent = raw[raw["type"].isin(["Send", "Send_joint"])].groupby(["pre", "post"])["n"].sum()
    gap = raw[raw["type"] == "Gap_junction"].rename(columns={"n": "synapses"})
    got = _named(read_source(f"durbin1987_{series.lower()}"))
    chem = got[got["kind"] == "chemical"].set_index(["pre", "post"])["weight"]
    assert chem.sort_index().to_dict() == sent.sort_index().to_dict()
    elec = got[got["kind"] == "electrical"]
    assert {frozenset((a, b)): int(w) for a, b, w in
            zip(elec["pre"], elec["post"], elec["weight"], strict=True)} == \
        _undirected_max(gap, "synapses")


def test_yim2024_matches_networkx() -> None:
    path = cect_root() / "data" / "41467_2024_45943_MOESM6_ESM.xlsx"
    sheet = pd.read_excel(path, sheet_name="Dauer", index_col=0, header=0, skiprows=[1])
    matrix = sheet.drop(columns=sheet.columns[0]).astype(float)
    graph = nx.from_pandas_adjacency(matrix, create_using=nx.DiGraph)
    got = _named(read_source("yim2024_dauer"))
    assert set(got["kind"]) == {"chemical"}
    assert len(got) == graph.number_of_edges()
    assert got["publishedWeight"].sum() == pytest.approx(graph.size(weight="weight"))
    assert (got["weight"] == np.ceil(got["publishedWeight"])).all()
    hub = max(graph.nodes, key=lambda n: graph.out_degree(n, weight="weight"))
    for cell in (hub, "AVAL", "RIAR"):
        assert got[got["pre"] == cell].set_index("post")["publishedWeight"].to_dict() == \
            pytest.approx({b: d["weight"] for _, b, d in graph.out_edges(cell, data=True)})
    cells = {n for n in graph.nodes if graph.degree(n) > 0}
    assert set(read_source("yim2024_dauer").neurons["instance"]) == cells


def test_every_builtin_is_listed_and_described() -> None:
    described = builtin_descriptions()
    assert set(described) == set(BUILTIN)
    assert all(described.values())
    assert {f"witvliet2020_{i}" for i in range(1, 9)} <= set(BUILTIN)


def test_bad_edge_list_names_row_and_column(tmp_path: Path) -> None:
    path = tmp_path / "edges.csv"
    path.write_text("pre\tpost\ttype\tsynapses\nAVAL\tAVBL\tchemical\t3\n"
                    "AVAL\tAVBR\tchemical\tmany\n")
    with pytest.raises(IngestError) as err:
        read_edge_list(path)
    assert (err.value.row, err.value.column) == (3, "synapses")
    path.write_text("pre\tpost\ttype\tsynapses\nAVAL\tAVBL\tchemical\t3\n"
                    "AVAL\tAVBL\tmuscular\t1\n")
    with pytest.raises(IngestError) as err:
        read_edge_list(path)
    assert (err.value.row, err.value.column) == (3, "type")
    path.write_text("pre\tpost\ttype\tsynapses\nAVAL\tAVBL\tchemical\t3\n"
                    "AVAL\tAVBL\tchemical\t1\n")
    with pytest.raises(IngestError, match="listed twice") as err:
        read_edge_list(path)
    assert err.value.row == 3


def test_bad_matrix_names_the_cells(tmp_path: Path) -> None:
    path = tmp_path / "cect.json"
    path.write_text(json.dumps({"nodes": ["A", "B"], "connections": {
        "Generic_CS": [[0, 1.5], [0, 0]], "Generic_GJ": [[0, 0], [0, 0]]}}))
    with pytest.raises(IngestError, match="from A to B") as err:
        read_cect_matrices(path)
    assert err.value.row == 1
    path.write_text(json.dumps({"nodes": ["A", "B"], "connections": {"Generic_CS": [[0]]}}))
    with pytest.raises(IngestError, match="shape"):
        read_cect_matrices(path)
    path.write_text(json.dumps({"nodes": ["A"], "connections": {"Dopamine": [[0]]}}))
    with pytest.raises(IngestError, match="Dopamine"):
        read_cect_matrices(path)


def test_bad_text_table_names_the_line(tmp_path: Path) -> None:
    spec = EdgeTable("x.txt", kind="type", columns=("pre", "post", "type", "synapses"),
                     kinds=(("Send", "chemical"), ("Receive", "")))
    path = tmp_path / "x.txt"
    path.write_text("# note\nAVAL AVBL Send 2\n\nAVAL AVBR Send 1 # fine\nAVAL AVBR Receive x\n")
    with pytest.raises(IngestError) as err:
        read_edge_list(path, spec)
    assert (err.value.row, err.value.column) == (5, "synapses")
    path.write_text("AVAL AVBL Send 2\nAVAL AVBL Sent 2\n")
    with pytest.raises(IngestError, match="unknown connection type 'sent'") as err:
        read_edge_list(path, spec)
    assert err.value.row == 2
    path.write_text("AVAL AVBL Send 2\nAVAL Send 2\n")
    with pytest.raises(IngestError, match="3 fields") as err:
        read_edge_list(path, spec)
    assert err.value.row == 2


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="file not found"):
        read_published("witvliet2020_1", root=tmp_path)


def test_ingest_list_names_every_builtin() -> None:
    from typer.testing import CliRunner

    from connectome_query.cli.main import app

    result = CliRunner().invoke(app, ["ingest", "--list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in BUILTIN:
        assert name in result.output


def _chemical_published(name: str) -> tuple[int, float]:
    chem = _named(read_source(name))
    chem = chem[chem["kind"] == "chemical"]
    return int(chem["weight"].sum()), float(chem["publishedWeight"].sum())


def test_published_weight_reaches_the_import_files(tmp_path: Path) -> None:
    from connectome_query.ingest.bulk_import import _connection_file
    from connectome_query.ingest.memory import tables_source
    from connectome_query.ingest.prepare import prepare

    prep = prepare(tables_source(read_source("cook2020_pharynx")))
    try:
        files = _connection_file(tmp_path, prep, "chemical", "t_cook2020")
    finally:
        prep.close()
    assert files is not None
    header, data = files.split(",")
    frame = pd.read_csv(data, header=None, names=Path(header).read_text().strip().split(","))
    weight, published = _chemical_published("cook2020_pharynx")
    assert int(frame["weight:long"].sum()) == weight
    assert frame["publishedWeight:double"].sum() == pytest.approx(published)


@pytest.mark.neo4j
def test_published_weight_survives_the_load(driver: object) -> None:
    from connectome_query.ingest.loader import load
    from tests.support.graph import current_key

    load(driver, read_source("cook2020_pharynx"), "t_cook2020")  # type: ignore[arg-type]
    key = current_key(driver, "t_cook2020")  # type: ignore[arg-type]
    rows, _, _ = driver.execute_query(  # type: ignore[attr-defined]
        "MATCH (:Neuron {dataset: $d})-[c:ConnectsTo]->() "
        "RETURN sum(c.weight) AS w, sum(c.publishedWeight) AS p, count(c) AS n", d=key)
    weight, published = _chemical_published("cook2020_pharynx")
    assert rows[0]["w"] == weight
    assert rows[0]["p"] == pytest.approx(published)
