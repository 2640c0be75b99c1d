"""FlyWire Codex downloads and neuPrint bulk exports of synthetic content (FlyWire-sized ids),
checked against pandas over the same files: per-pair weights, per-neuropil/ROI weights, neuron
properties, and errors naming file, row and column. The Neo4j test follows ROI weights into
the graph and into an ROI-restricted export."""

from __future__ import annotations

import gc
import json
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
from connectome_query.ingest.sources import open_source, read_source
from tests.support.graph import current_key

NEUROPILS = ["AL_L", "AL_R", "MB_CA_R", "LO_R", "ME_L"]
BASE = 720575940600000000


def _codex(folder: Path, seed: int = 0, neurons: int = 300, rows: int = 3000,
           gz: bool = False, neuron_tables: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = BASE + rng.choice(10**10, neurons, replace=False)
    conns = pd.DataFrame({
        "pre_root_id": rng.choice(ids, rows), "post_root_id": rng.choice(ids, rows),
        "neuropil": rng.choice(NEUROPILS, rows), "syn_count": rng.integers(5, 80, rows),
        "nt_type": rng.choice(["ACH", "GABA", "GLUT", "DA"], rows)})
    conns = conns.drop_duplicates(["pre_root_id", "post_root_id", "neuropil"])
    folder.mkdir(parents=True, exist_ok=True)
    conns.to_csv(folder / ("connections.csv.gz" if gz else "connections.csv"), index=False)
    if neuron_tables:
        pd.DataFrame({"root_id": ids, "group": "g", "nt_type": rng.choice(["ACH", "GABA"],
                                                                          neurons)}
                     ).to_csv(folder / "neurons.csv", index=False)
        pd.DataFrame({"root_id": ids, "super_class": rng.choice(["central", "optic"], neurons),
                      "class": rng.choice(["ALPN", "Kenyon_Cell", ""], neurons),
                      "cell_type": rng.choice(["T4a", "T5b", ""], neurons)}
                     ).to_csv(folder / "classification.csv", index=False)
        half = ids[: neurons // 2]
        pd.DataFrame({"root_id": half, "primary_type": [f"P{i % 7}" for i in range(len(half))]}
                     ).to_csv(folder / "consolidated_cell_types.csv", index=False)
    return conns


def _rois(info: str) -> dict[str, int]:
    return {k: v["post"] for k, v in json.loads(info).items()}


def test_codex_folds_neuropil_rows_like_pandas(tmp_path: Path) -> None:
    raw = _codex(tmp_path, gz=True)
    got = read_source(str(tmp_path))
    want = raw.groupby(["pre_root_id", "post_root_id"])
    sums = want["syn_count"].sum()
    conns = got.connections.set_index(["bodyIdPre", "bodyIdPost"])
    assert len(conns) == len(sums)
    assert conns["weight"].sort_index().to_dict() == sums.to_dict()
    for key, group in list(want)[:50]:
        assert _rois(conns.loc[key, "roiInfo"]) == dict(
            zip(group["neuropil"], group["syn_count"], strict=True))
    neurons = got.neurons.set_index("bodyId")
    cls = pd.read_csv(tmp_path / "classification.csv").set_index("root_id")
    types = pd.read_csv(tmp_path / "consolidated_cell_types.csv").set_index("root_id")
    nts = pd.read_csv(tmp_path / "neurons.csv").set_index("root_id")
    for root in cls.index[:100]:
        row = cls.loc[root]
        assert neurons.loc[root, "cellClass"] == (row["class"] if isinstance(row["class"], str)
                                                  else row["super_class"])
        expected_type = (types.loc[root, "primary_type"] if root in types.index else
                         row["cell_type"] if isinstance(row["cell_type"], str) else None)
        assert neurons.loc[root, "type"] == expected_type
        assert neurons.loc[root, "neurotransmitter"] == nts.loc[root, "nt_type"]


def test_codex_and_bulk_fold_the_same_when_spilled(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows held past the spill size go to disk by (pre, post) and are folded a bucket at a
    time: the same connections and ROI weights as pandas, and the spill folder is removed."""
    monkeypatch.setenv("CONNECTOME_INGEST_SPILL_ROWS", "1000")
    monkeypatch.setenv("CONNECTOME_INGEST_CHUNK_ROWS", "1000")
    monkeypatch.setenv("CONNECTOME_INGEST_SPILL_DIR", str(tmp_path / "spill"))
    (tmp_path / "spill").mkdir()
    raw = _codex(tmp_path / "codex", rows=6000, neuron_tables=False, seed=7)
    total, roi = _bulk(tmp_path / "bulk", seed=8)
    source = open_source(str(tmp_path / "codex"))
    assert list((tmp_path / "spill").iterdir())  # the folded connections wait on disk
    got = read_source(str(tmp_path / "codex"))
    conns = got.connections.set_index(["bodyIdPre", "bodyIdPost"])
    want = {key: dict(zip(g["neuropil"], g["syn_count"], strict=True))
            for key, g in raw.groupby(["pre_root_id", "post_root_id"])}
    assert {key: _rois(info) for key, info in conns["roiInfo"].items()} == want
    assert conns["weight"].to_dict() == {k: sum(v.values()) for k, v in want.items()}
    per = raw.groupby(["pre_root_id", "nt_type"])["syn_count"].sum().unstack(fill_value=0)
    neurons = got.neurons.set_index("bodyId")
    for root in per.index:
        if (per.loc[root] == per.loc[root].max()).sum() == 1:
            assert neurons.loc[root, "neurotransmitter"] == per.loc[root].idxmax()
    bulk = read_source(str(tmp_path / "bulk")).connections.set_index(["bodyIdPre", "bodyIdPost"])
    assert bulk["weight"].to_dict() == total.set_index(["bodyId_pre", "bodyId_post"])[
        "weight"].to_dict()
    want = {key: dict(zip(g["roi"], g["weight"], strict=True))
            for key, g in roi.groupby(["bodyId_pre", "bodyId_post"])}
    assert {key: _rois(info) for key, info in bulk["roiInfo"].dropna().items()} == want
    del source, got
    gc.collect()
    assert not list((tmp_path / "spill").iterdir())


def test_spilled_errors_name_the_earliest_row(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A problem found in several buckets is reported at its earliest row in the file."""
    monkeypatch.setenv("CONNECTOME_INGEST_SPILL_ROWS", "500")
    monkeypatch.setenv("CONNECTOME_INGEST_CHUNK_ROWS", "1000")
    raw = _codex(tmp_path, rows=4000, neuron_tables=False, seed=9).reset_index(drop=True)
    repeated = raw.iloc[[3000, 1500, 2500]]
    pd.concat([raw, repeated]).to_csv(tmp_path / "connections.csv", index=False)
    with pytest.raises(IngestError, match="twice") as err:
        read_source(str(tmp_path))
    assert (err.value.row, err.value.column) == (len(raw) + 2, "neuropil")
    total, roi = _bulk(tmp_path / "bulk", seed=10)
    total = total.reset_index(drop=True)
    pairs = set(zip(roi["bodyId_pre"], roi["bodyId_post"], strict=True))
    dropped = total.iloc[[40, 7, 90]]
    total.drop(index=dropped.index).to_csv(tmp_path / "bulk" / "traced-total-connections.csv",
                                           index=False)
    rows = roi.reset_index(drop=True)
    gone = {(a, b) for a, b in zip(dropped["bodyId_pre"], dropped["bodyId_post"], strict=True)}
    assert gone <= pairs
    at = min(i for i, key in enumerate(zip(rows["bodyId_pre"], rows["bodyId_post"], strict=True))
             if key in gone)
    with pytest.raises(IngestError, match="not in") as err:
        read_source(str(tmp_path / "bulk"))
    assert err.value.row == at + 2 and err.value.path.endswith("roi-connections.csv")


def test_codex_without_neuron_tables_takes_majority_transmitter(tmp_path: Path) -> None:
    raw = _codex(tmp_path, neuron_tables=False, seed=3)
    got = read_source(str(tmp_path)).neurons.set_index("bodyId")
    assert set(got.index) == set(raw["pre_root_id"]) | set(raw["post_root_id"])
    per = raw.groupby(["pre_root_id", "nt_type"])["syn_count"].sum().unstack(fill_value=0)
    for root in per.index[:100]:
        top = per.loc[root]
        if (top == top.max()).sum() == 1:  # ties may go either way
            assert got.loc[root, "neurotransmitter"] == top.idxmax()


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


CODEX_HEAD = "pre_root_id,post_root_id,neuropil,syn_count,nt_type\n"


@pytest.mark.parametrize(("body", "row", "column", "words"), [
    ("720575940600000001,720575940600000002,AL_L,x,ACH\n", 2, "syn_count", "whole"),
    ("720575940600000001,720575940600000002,AL_L,3,ACH\n"
     "720575940600000001.0,720575940600000002,AL_R,3,ACH\n", 3, "pre_root_id", None),
    ("720575940600000001,720575940600000002,AL_L,3,ACH\n"
     "720575940600000001,720575940600000002,AL_L,4,ACH\n", 3, "neuropil", "twice"),
    ("720575940600000001,720575940600000002,,3,ACH\n", 2, "neuropil", None),
])
def test_codex_bad_rows_are_named(tmp_path: Path, body: str, row: int, column: str,
                                  words: str | None) -> None:
    _write(tmp_path / "connections.csv", CODEX_HEAD + body)
    with pytest.raises(IngestError, match=words) as err:
        read_source(str(tmp_path))
    assert (err.value.row, err.value.column) == (row, column)
    assert err.value.path.endswith("connections.csv")


def test_codex_unknown_neuron_and_repeated_root_id(tmp_path: Path) -> None:
    _write(tmp_path / "connections.csv",
           CODEX_HEAD + "720575940600000001,720575940600000002,AL_L,3,ACH\n"
           "720575940600000001,720575940600000009,AL_L,3,ACH\n")
    _write(tmp_path / "neurons.csv", "root_id,nt_type\n720575940600000001,ACH\n"
           "720575940600000002,GABA\n")
    with pytest.raises(IngestError, match="720575940600000009") as err:
        read_source(str(tmp_path))
    assert (err.value.row, err.value.column) == (3, "post_root_id")
    _write(tmp_path / "neurons.csv", "root_id,nt_type\n720575940600000001,ACH\n"
           "720575940600000002,GABA\n720575940600000001,GLUT\n")
    with pytest.raises(IngestError, match="twice") as err:
        read_source(str(tmp_path))
    assert (err.value.row, err.value.column) == (4, "root_id")
    assert err.value.path.endswith("neurons.csv")


def _bulk(folder: Path, seed: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ids = rng.choice(10**11, 200, replace=False) + 10**9
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"bodyId": ids, "type": rng.choice(["KCg", "MBON01", "PAM"], len(ids)),
                  "instance": [f"n{i}" for i in range(len(ids))]}
                 ).to_csv(folder / "traced-neurons.csv", index=False)
    roi = pd.DataFrame({"bodyId_pre": rng.choice(ids, 2000), "bodyId_post": rng.choice(ids, 2000),
                        "roi": rng.choice(["CA(R)", "a'L(R)", "NotPrimary"], 2000),
                        "weight": rng.integers(1, 30, 2000)})
    roi = roi.drop_duplicates(["bodyId_pre", "bodyId_post", "roi"])
    total = roi.groupby(["bodyId_pre", "bodyId_post"])["weight"].sum().reset_index()
    total["weight"] += rng.integers(0, 3, len(total))  # synapses outside every ROI
    total.to_csv(folder / "traced-total-connections.csv", index=False)
    roi.to_csv(folder / "traced-roi-connections.csv", index=False)
    return total, roi


def test_bulk_export_matches_pandas(tmp_path: Path) -> None:
    total, roi = _bulk(tmp_path)
    got = read_source(str(tmp_path)).connections.set_index(["bodyIdPre", "bodyIdPost"])
    assert got["weight"].sort_index().to_dict() == total.set_index(
        ["bodyId_pre", "bodyId_post"])["weight"].to_dict()
    for key, group in list(roi.groupby(["bodyId_pre", "bodyId_post"]))[:50]:
        assert _rois(got.loc[key, "roiInfo"]) == dict(zip(group["roi"], group["weight"],
                                                           strict=True))


def test_bulk_export_inconsistent_files_are_named(tmp_path: Path) -> None:
    total, roi = _bulk(tmp_path)
    roi.iloc[:5].assign(weight=10**6).pipe(
        lambda f: pd.concat([f, roi.iloc[5:]])).to_csv(tmp_path / "traced-roi-connections.csv",
                                                       index=False)
    with pytest.raises(IngestError, match="add up to") as err:
        read_source(str(tmp_path))
    assert err.value.column == "weight" and err.value.path.endswith("total-connections.csv")
    total.iloc[1:].to_csv(tmp_path / "traced-total-connections.csv", index=False)
    roi.to_csv(tmp_path / "traced-roi-connections.csv", index=False)
    first = total.iloc[0]
    rows = roi.reset_index(drop=True)
    at = rows[(rows["bodyId_pre"] == first["bodyId_pre"])
              & (rows["bodyId_post"] == first["bodyId_post"])].index.min()
    with pytest.raises(IngestError, match="not in") as err:
        read_source(str(tmp_path))
    assert err.value.row == int(at) + 2 and err.value.path.endswith("roi-connections.csv")


@pytest.mark.neo4j
def test_codex_roi_weights_reach_graph_and_export(driver: neo4j.Driver, tmp_path: Path) -> None:
    raw = _codex(tmp_path / "codex", neurons=120, rows=800, seed=5)
    load(driver, open_source(str(tmp_path / "codex")), "t_codex")
    records, _, _ = driver.execute_query(
        "MATCH (a:Neuron {dataset: $k})-[c:ConnectsTo]->(b) "
        "RETURN a.bodyId AS pre, b.bodyId AS post, c.weight AS w, c.rois AS rois, "
        "c.roiWeights AS rw", k=current_key(driver, "t_codex"))
    graph = {(r["pre"], r["post"]): dict(zip(r["rois"], r["rw"], strict=True))
             for r in records}
    want = {key: dict(zip(g["neuropil"], g["syn_count"], strict=True))
            for key, g in raw.groupby(["pre_root_id", "post_root_id"])}
    assert graph == want
    plan = plan_export(driver, MatrixRequest(dataset="t_codex", rois=("AL_L", "LO_R"),
                                             min_weight=1))
    chunk, ids = collect(driver, plan)
    got = {(int(ids[r]), int(ids[c])): int(w) for r, c, w in
           zip(chunk.rows, chunk.cols, chunk.weights, strict=True)}
    in_rois = raw[raw["neuropil"].isin(["AL_L", "LO_R"])]
    assert got == in_rois.groupby(["pre_root_id", "post_root_id"])["syn_count"].sum().to_dict()


def test_codex_folder_with_two_connection_tables_is_refused(tmp_path: Path) -> None:
    _codex(tmp_path)
    _codex(tmp_path / "x", seed=2)
    (tmp_path / "x" / "connections.csv").rename(tmp_path / "connections_no_threshold.csv")
    with pytest.raises(IngestError, match=r"connections_no_threshold\.csv"):
        open_source(str(tmp_path))
