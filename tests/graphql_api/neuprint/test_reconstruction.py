"""The real neuprint-python client against `connectome serve --tls` on a synthetic
reconstruction: every answer equal to pandas on the run directory's own tables
(`segments.parquet`, `synapses.parquet`, `skeletons/*.swc`), read here independently."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from neuprint import (
    Client,
    NeuronCriteria,
    fetch_adjacencies,
    fetch_neurons,
    fetch_simple_connections,
    fetch_synapse_connections,
    fetch_synapses,
)

from tests.support.neuprint_server import RECONSTRUCTION, TOKEN, Served

pytestmark = [pytest.mark.neo4j, pytest.mark.slow]


@pytest.fixture(scope="module")
def run(reconstruction: Path) -> Path:
    syn = pd.read_parquet(reconstruction / "synapses.parquet")
    assert len(syn) >= 5 and syn["pre_segment_id"].nunique() >= 2, "too few synapses to test"
    return reconstruction


@pytest.fixture(scope="module")
def client(served: Served, run: Path) -> Client:
    return Client(served.url, dataset=RECONSTRUCTION, token=TOKEN, verify=str(served.cert))


def _synapses(run: Path) -> pd.DataFrame:
    return pd.read_parquet(run / "synapses.parquet")


def _segments(run: Path) -> pd.DataFrame:
    return pd.read_parquet(run / "segments.parquet")


def test_client_lists_the_reconstruction(client: Client) -> None:
    assert RECONSTRUCTION in client.fetch_datasets(reload_cache=True)


def test_fetch_custom_counts_the_tables(client: Client, run: Path) -> None:
    df = client.fetch_custom("MATCH (n:Neuron) RETURN count(n) AS neurons")
    assert int(df["neurons"].iloc[0]) == len(_segments(run))
    df = client.fetch_custom("MATCH (:Neuron)-[c:ConnectsTo]->(:Neuron) "
                             "RETURN count(c) AS pairs, sum(c.weight) AS synapses")
    syn = _synapses(run)
    assert int(df["pairs"].iloc[0]) == len(syn.groupby(["pre_segment_id", "post_segment_id"]))
    assert int(df["synapses"].iloc[0]) == len(syn)


def test_fetch_neurons_equal_the_segments(client: Client, run: Path) -> None:
    neurons, _ = fetch_neurons(NeuronCriteria(), client=client)
    seg, syn = _segments(run).set_index("segment_id"), _synapses(run)
    got = neurons.set_index("bodyId").sort_index()
    assert list(got.index) == sorted(seg.index)
    assert (got["type"] == seg.loc[got.index, "predicted_class"]).all()
    assert (got["size"] == seg.loc[got.index, "size_voxels"]).all()
    outputs = syn["pre_segment_id"].value_counts().reindex(got.index, fill_value=0)
    inputs = syn["post_segment_id"].value_counts().reindex(got.index, fill_value=0)
    assert (got["pre"] == outputs).all() and (got["post"] == inputs).all()
    with_soma = seg.dropna(subset=["soma_x"])
    for body, row in with_soma.iterrows():
        assert list(got.loc[body, "somaLocation"]) == pytest.approx(
            [row["soma_x"], row["soma_y"], row["soma_z"]])


def test_fetch_adjacencies_equal_the_synapse_table(client: Client, run: Path) -> None:
    _, conns = fetch_adjacencies(NeuronCriteria(), NeuronCriteria(), client=client)
    got = conns.groupby(["bodyId_pre", "bodyId_post"])["weight"].sum()
    want = _synapses(run).groupby(["pre_segment_id", "post_segment_id"]).size()
    assert {k: int(v) for k, v in got.items()} == {k: int(v) for k, v in want.items()}


def test_fetch_simple_connections_per_neuron(client: Client, run: Path) -> None:
    syn = _synapses(run)
    for body in sorted(set(syn["pre_segment_id"])):
        df = fetch_simple_connections(NeuronCriteria(bodyId=int(body)), None, client=client)
        got = dict(zip(df["bodyId_post"].astype(int), df["weight"].astype(int), strict=True))
        want = syn[syn["pre_segment_id"] == body].groupby("post_segment_id").size()
        assert got == {int(k): int(v) for k, v in want.items()}


def _rows(df: pd.DataFrame, *columns: str) -> list[tuple]:
    return sorted(map(tuple, df[list(columns)].to_numpy().tolist()))


def _as_client_reads(table: pd.DataFrame) -> pd.DataFrame:
    """The table's positions as the client returns them (int32, nm here) and its confidence
    at float32."""
    out = table.copy()
    for axis in "xyz":
        out[axis] = out[axis].astype(np.int32)
    out["confidence"] = out["confidence"].astype(np.float32).round(5)
    return out


def test_fetch_synapses_equal_the_table_row_for_row(client: Client, run: Path) -> None:
    """A neuron's outputs as `pre` rows and its inputs as `post` rows, as neuPrint answers."""
    syn = _as_client_reads(_synapses(run))
    for body in sorted(set(syn["pre_segment_id"]) | set(syn["post_segment_id"])):
        got = fetch_synapses(NeuronCriteria(bodyId=int(body)), client=client)
        got["confidence"] = got["confidence"].round(5)
        want = pd.concat([syn[syn["pre_segment_id"] == body].assign(type="pre"),
                          syn[syn["post_segment_id"] == body].assign(type="post")])
        columns = ("type", "x", "y", "z", "confidence")
        assert _rows(got, *columns, "postCompartment") == _rows(
            want, *columns, "post_compartment"), body
        assert (got["bodyId"] == body).all()


def test_fetch_synapse_connections_equal_the_table(client: Client, run: Path) -> None:
    syn = _as_client_reads(_synapses(run))
    got = fetch_synapse_connections(NeuronCriteria(), NeuronCriteria(), client=client)
    got["confidence_pre"] = got["confidence_pre"].round(5)
    got["confidence_post"] = got["confidence_post"].round(5)
    for side in ("pre", "post"):  # one location and confidence per synapse in a run directory
        assert _rows(got, "bodyId_pre", "bodyId_post", f"x_{side}", f"y_{side}", f"z_{side}",
                     f"confidence_{side}") == _rows(
            syn, "pre_segment_id", "post_segment_id", "x", "y", "z", "confidence")


def test_fetch_skeleton_equals_the_swc(client: Client, run: Path) -> None:
    files = sorted((run / "skeletons").glob("*.swc"))
    assert files
    for path in files:
        want = pd.read_csv(path, sep=r"\s+", comment="#", header=None,
                           names=["node", "kind", "x", "y", "z", "radius", "parent"])
        got = client.fetch_skeleton(int(path.stem))
        np.testing.assert_allclose(
            got[["rowId", "x", "y", "z", "radius", "link"]].to_numpy(float),
            want[["node", "x", "y", "z", "radius", "parent"]].to_numpy(float), rtol=1e-6)


def test_other_datasets_unseen_from_the_reconstruction(client: Client) -> None:
    for cypher in ("MATCH (n:cook2019_Neuron) RETURN count(n) AS n",
                   "MATCH (n:`cook2019@v1_Neuron`) RETURN count(n) AS n",
                   "MATCH (n) RETURN count(n) AS n"):
        with pytest.raises(requests.HTTPError) as refused:
            client.fetch_custom(cypher)
        assert refused.value.response.status_code == 400, cypher
    key = client.fetch_custom("MATCH (m:Meta) RETURN m.dataset AS k")["k"].iloc[0]
    assert key.startswith(f"{RECONSTRUCTION}@v")
    seen = client.fetch_custom("MATCH (n:Neuron)-[*1..3]-(m) RETURN DISTINCT m.dataset AS d")
    assert set(seen["d"]) == {key}


def test_the_reconstruction_unseen_from_other_datasets(served: Served, run: Path) -> None:
    cook = Client(served.url, dataset="cook2019", token=TOKEN, verify=str(served.cert))
    for label in (f"{RECONSTRUCTION}_Neuron", f"`{RECONSTRUCTION}@v1_Neuron`"):
        with pytest.raises(requests.HTTPError) as refused:
            cook.fetch_custom(f"MATCH (n:{label}) RETURN count(n) AS n")
        assert refused.value.response.status_code == 400
    seen = cook.fetch_custom("MATCH (n:Neuron)-[*1..2]-(m) RETURN DISTINCT m.dataset AS d")
    assert not any(str(d).startswith(RECONSTRUCTION) for d in seen["d"])
