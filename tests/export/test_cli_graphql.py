"""`connectome export matrix`, the GraphQL field, and exports not blocking other queries."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import scipy.sparse as sp
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import connectome_query.export.matrix as export_module
from connectome_query.cli.main import app
from connectome_query.export.request import ExportLimits, MatrixRequest
from tests.support.export_synth import SYNTH, SynthSet
from tests.support.readback import edges_of, read_back

pytestmark = pytest.mark.neo4j
runner = CliRunner()


def test_cli_writes_each_format(tmp_path: Path, synth: SynthSet) -> None:
    expected = edges_of(synth.chemical(min_weight=2))
    for suffix, fmt in ((".parquet", "parquet"), (".npz", "npz"), (".mtx", "mtx"),
                        (".csv", "csv"), (".arrows", "arrow")):
        out = tmp_path / f"m{suffix}"
        result = runner.invoke(app, ["export", "matrix", str(out), "-d", SYNTH,
                                     "--min-weight", "2"])
        assert result.exit_code == 0, result.output
        assert read_back(fmt, out.read_bytes())[0] == expected
        assert not list(tmp_path.glob("*.partial"))


def test_cli_filters_and_neuron_table(tmp_path: Path, synth: SynthSet) -> None:
    import pandas as pd

    ids = sorted(synth.neurons["bodyId"].astype(int))[:120]
    id_file = tmp_path / "ids.txt"
    id_file.write_text("\n".join(map(str, ids)))
    out, table = tmp_path / "sub.npz", tmp_path / "sub_neurons.csv"
    result = runner.invoke(app, ["export", "matrix", str(out), "-d", SYNTH, "--body-ids-file",
                                 str(id_file), "--roi", "A", "--neurons", str(table)])
    assert result.exit_code == 0, result.output
    got, labels = read_back("npz", out.read_bytes())
    assert labels == ids
    assert got == edges_of(synth.chemical(rois={"A"}).subgraph(ids))
    assert pd.read_csv(table)["bodyId"].tolist() == ids


def test_cli_bad_input_is_a_clear_error(tmp_path: Path, synth: SynthSet) -> None:
    out = tmp_path / "x.parquet"
    result = runner.invoke(app, ["export", "matrix", str(out), "-d", "no_such_set"])
    assert result.exit_code == 1
    assert "unknown dataset" in result.output
    result = runner.invoke(app, ["export", "matrix", str(tmp_path / "x.xlsx"), "-d", SYNTH])
    assert result.exit_code != 0 and "format" in result.output
    result = runner.invoke(app, ["export", "matrix", str(out), "-d", SYNTH, "--min-weight", "-3"])
    assert result.exit_code == 1 and "minWeight must be >= 0" in result.output
    assert not out.exists() and not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize("fmt", ["parquet", "npz"])
def test_interrupted_export_leaves_no_file(tmp_path: Path, synth: SynthSet,
                                           monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    out = tmp_path / f"big.{fmt}"
    out_before = tmp_path / f"old.{fmt}"
    monkeypatch.setenv("CONNECTOME_EXPORT_PAGE_NEURONS", "20")
    real = export_module.chunk_from_records
    calls = {"n": 0}

    def flaky(*args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # as if the user pressed Ctrl+C mid-export
        return real(*args)

    monkeypatch.setattr(export_module, "chunk_from_records", flaky)
    result = runner.invoke(app, ["export", "matrix", str(out), "-d", SYNTH])
    assert result.exit_code != 0
    assert calls["n"] == 4
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
    # an earlier complete file of that name stays as it was
    out_before.write_bytes(b"complete")
    calls["n"] = 0
    result = runner.invoke(app, ["export", "matrix", str(out_before), "-d", SYNTH])
    assert out_before.read_bytes() == b"complete"


def test_cli_downloads_from_the_api(tmp_path: Path, synth: SynthSet, api: TestClient,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    def stream(method: str, url: str, **kw: Any) -> Any:
        kw.pop("timeout", None)
        return api.stream(method, url.replace("http://api", ""), **kw)

    monkeypatch.setattr(httpx, "stream", stream)
    out = tmp_path / "dl.npz"
    result = runner.invoke(app, ["export", "matrix", str(out), "-d", SYNTH,
                                 "--synapse-type", "electrical", "--server", "http://api"])
    assert result.exit_code == 0, result.output
    assert read_back("npz", out.read_bytes())[0] == edges_of(synth.electrical())
    result = runner.invoke(app, ["export", "matrix", str(tmp_path / "e.csv"), "-d", "nope",
                                 "--server", "http://api"])
    assert result.exit_code == 1 and "404" in result.output and "unknown dataset" in result.output
    assert not (tmp_path / "e.csv").exists()


# -- GraphQL -------------------------------------------------------------------------------------
MATRIX_QUERY = """query($d: String!, $ids: [String!], $types: [String!], $w: Int!,
  $s: MatrixSynapseType!, $l: MatrixLevel!) {
  connectivityMatrix(dataset: $d, bodyIds: $ids, types: $types, minWeight: $w, synapseType: $s,
                     level: $l, format: NPZ) {
    size inline entryCount labels entries { pre post weight } downloadUrl } }"""


def gql(api: TestClient, **variables: Any) -> dict[str, Any]:
    body = {"d": SYNTH, "ids": None, "types": None, "w": 1, "s": "CHEMICAL", "l": "NEURON"}
    body.update(variables)
    response = api.post("/graphql", json={"query": MATRIX_QUERY, "variables": body})
    assert response.status_code == 200, response.text
    return response.json()


def test_graphql_small_matrix_inline(api: TestClient, synth: SynthSet) -> None:
    ids = sorted(synth.neurons["bodyId"].astype(int))[:60]
    data = gql(api, ids=[str(i) for i in ids])["data"]["connectivityMatrix"]
    assert data["inline"] and data["size"] == 60
    assert data["labels"] == [str(i) for i in ids]
    got = {(int(e["pre"]), int(e["post"])): e["weight"] for e in data["entries"]}
    assert got == edges_of(synth.chemical().subgraph(ids))
    assert data["entryCount"] == len(got)
    data = gql(api, s="ELECTRICAL", w=2, l="TYPE")["data"]["connectivityMatrix"]
    assert data["inline"]
    full = read_back("npz", api.get(data["downloadUrl"]).content, by_type=True)[0]
    assert {(e["pre"], e["post"]): e["weight"] for e in data["entries"]} == full


def test_graphql_large_matrix_gives_a_download_url(api: TestClient, synth: SynthSet,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONNECTOME_EXPORT_INLINE_EDGES", "100")
    data = gql(api)["data"]["connectivityMatrix"]
    assert not data["inline"] and data["entries"] is None
    assert data["size"] == len(synth.neurons)
    response = api.get(data["downloadUrl"])
    assert response.status_code == 200
    assert read_back("npz", response.content)[0] == edges_of(synth.chemical())


def test_graphql_errors(api: TestClient) -> None:
    body = gql(api, d="no_such_set")
    assert "unknown dataset" in body["errors"][0]["message"]
    body = gql(api, w=-1)
    assert "minWeight must be >= 0" in body["errors"][0]["message"]


# -- not holding up other queries ---------------------------------------------------------------
def test_a_slow_download_does_not_block_other_queries(api: TestClient, synth: SynthSet,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONNECTOME_EXPORT_PAGE_NEURONS", "10")
    monkeypatch.setattr("connectome_query.export.stream.QUEUE_BLOCK", 256)
    started, release = threading.Event(), threading.Event()
    received: list[bytes] = []

    def slow_client() -> None:
        with api.stream("GET", "/export/matrix", params={"dataset": SYNTH,
                                                         "format": "csv"}) as response:
            for block in response.iter_bytes():
                received.append(block)
                started.set()
                release.wait(30)  # a client reading slowly: the export stays open

    thread = threading.Thread(target=slow_client)
    thread.start()
    try:
        assert started.wait(30)
        t0 = time.monotonic()
        for _ in range(5):
            response = api.post("/graphql", json={"query": "{ datasets { name } }"})
            assert response.status_code == 200
        assert time.monotonic() - t0 < 10
        assert thread.is_alive()  # the export was still in flight
    finally:
        release.set()
        thread.join(60)
    data = b"".join(received)
    assert read_back("csv", data)[0] == edges_of(synth.chemical())
    assert sp.load_npz  # scipy import used by readers


def test_export_memory_is_bounded_by_page_not_matrix(synth: SynthSet, driver: Any) -> None:
    """Writers never see more than one page of entries at a time."""
    plan = export_module.prepare(driver, MatrixRequest(dataset=SYNTH, format="parquet"),
                                 limits=ExportLimits(page_neurons=25))
    seen: list[int] = []
    real_iter = export_module.iter_chunks

    def spy(*args: Any, **kw: Any) -> Any:
        for chunk in real_iter(*args, **kw):
            seen.append(len(chunk.rows))
            yield chunk

    export_module.iter_chunks = spy  # type: ignore[assignment]
    try:
        buf = io.BytesIO()
        stats = export_module.write(driver, plan, buf)
    finally:
        export_module.iter_chunks = real_iter  # type: ignore[assignment]
    assert stats.pages == len(seen) == -(-len(synth.neurons) // 25)
    assert max(seen) < stats.entries / 3
    assert read_back("parquet", buf.getvalue())[0] == edges_of(synth.chemical())


# -- auth (graphql_api.auth) ---------------------------------------------------------------------
def test_export_follows_api_tokens(tmp_path: Path, neo4j_target: Any, synth: SynthSet) -> None:
    from connectome_query.graphql_api.app import create_app
    from connectome_query.graphql_api.auth import AuthConfig, TokenStore

    tokens = tmp_path / "tokens.json"
    _, mine = TokenStore(tokens).create("lab", [SYNTH])
    _, other = TokenStore(tokens).create("other-lab", ["cook2019"])
    app = create_app(neo4j_target, auth=AuthConfig(required=True, tokens_file=tokens))
    with TestClient(app) as client:
        params = {"dataset": SYNTH, "format": "csv"}
        anonymous = client.get("/export/matrix", params=params)
        assert anonymous.status_code == 404 and "unknown dataset" in anonymous.json()["detail"]
        wrong = client.get("/export/matrix", params=params,
                           headers={"Authorization": f"Bearer {other}"})
        assert wrong.status_code == 404
        bad = client.get("/export/matrix", params=params,
                         headers={"Authorization": "Bearer nonsense"})
        assert bad.status_code == 401
        ok = client.get("/export/matrix", params=params,
                        headers={"Authorization": f"Bearer {mine}"})
        assert ok.status_code == 200
        assert read_back("csv", ok.content)[0] == edges_of(synth.chemical())
        assert client.get("/export/neurons", params=params).status_code == 404
        body = client.post("/graphql", json={"query": MATRIX_QUERY, "variables": {
            "d": SYNTH, "w": 1, "s": "CHEMICAL", "l": "NEURON"}}).json()
        assert "unknown dataset" in body["errors"][0]["message"]


def test_a_failure_mid_download_breaks_the_transfer(api: TestClient, synth: SynthSet,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The server never finishes a response whose export failed: no valid-looking file."""
    monkeypatch.setenv("CONNECTOME_EXPORT_PAGE_NEURONS", "20")
    monkeypatch.setattr("connectome_query.export.stream.QUEUE_BLOCK", 256)
    real = export_module.chunk_from_records
    calls = {"n": 0}

    def flaky(*args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError("disk on fire")
        return real(*args)

    monkeypatch.setattr(export_module, "chunk_from_records", flaky)
    received = bytearray()
    with pytest.raises(RuntimeError, match="export failed while streaming"), api.stream(
            "GET", "/export/matrix", params={"dataset": SYNTH, "format": "csv"}) as response:
        assert response.status_code == 200
        for block in response.iter_bytes():
            received += block
    assert calls["n"] == 5
    # Bytes went out before the failure; the transfer then broke (over a real socket, an
    # unterminated chunked body that HTTP clients report as an error) instead of ending
    # cleanly with a short CSV.
    assert received.startswith(b'"bodyId_pre","bodyId_post","weight"')


@pytest.mark.parametrize("fmt", ["parquet", "npz", "arrow", "mtx"])
def test_truncated_downloads_are_detected(tmp_path: Path, api: TestClient, synth: SynthSet,
                                          fmt: str) -> None:
    from connectome_query.cli.export import check_complete

    data = export_bytes(api, fmt)
    whole = tmp_path / f"whole.{fmt}"
    whole.write_bytes(data)
    assert check_complete(whole, fmt) is None
    for cut in (len(data) // 3, len(data) - 5):
        part = tmp_path / f"part.{fmt}"
        part.write_bytes(data[:cut])
        assert check_complete(part, fmt) is not None


def export_bytes(api: TestClient, fmt: str) -> bytes:
    response = api.get("/export/matrix", params={"dataset": SYNTH, "format": fmt})
    assert response.status_code == 200
    return response.content
