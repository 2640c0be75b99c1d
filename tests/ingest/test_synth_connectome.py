"""The synthetic connectome generator: sizes, determinism, statistics, and that it ingests."""

from __future__ import annotations

import json
from pathlib import Path

import neo4j
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from connectome_query.cli.main import app
from connectome_query.ingest.readers.synapse_table import read_synapse_table
from connectome_query.ingest.sources import read_source
from connectome_query.ingest.synth_connectome import generate, synth_connectome

N, M, S = 3000, 60_000, 400_000


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "ds"
    synth_connectome(out, neurons=N, edges=M, synapses=S, seed=7)
    return out


@pytest.fixture(scope="module")
def frames(synth_dir: Path) -> dict[str, pd.DataFrame]:
    return {name: pq.read_table(synth_dir / f"{name}.parquet").to_pandas()
            for name in ("neurons", "connections", "synapses")}


def test_sizes_and_integrity(frames: dict[str, pd.DataFrame]) -> None:
    neurons, conns, syn = frames["neurons"], frames["connections"], frames["synapses"]
    assert len(neurons) == N and neurons["bodyId"].is_unique
    assert len(conns) == M and len(syn) == S
    assert not conns.duplicated(["bodyId_pre", "bodyId_post"]).any()
    assert (conns["bodyId_pre"] != conns["bodyId_post"]).all()
    assert (conns["weight"] >= 1).all() and conns["weight"].sum() == S
    assert syn["id"].is_unique
    known = set(neurons["bodyId"])
    assert set(conns["bodyId_pre"]) <= known and set(conns["bodyId_post"]) <= known
    assert neurons["bodyId"].max() < 2**53


def test_synapses_agree_with_connections(frames: dict[str, pd.DataFrame]) -> None:
    conns, syn = frames["connections"], frames["synapses"]
    counts = syn.groupby(["pre_pt_root_id", "post_pt_root_id"]).size()
    weights = conns.set_index(["bodyId_pre", "bodyId_post"])["weight"]
    assert counts.sort_index().to_dict() == weights.sort_index().to_dict()
    per_roi = syn.groupby(["pre_pt_root_id", "post_pt_root_id", "neuropil"]).size().to_dict()
    from_json = {(a, b, roi): v["post"] for a, b, info in conns[
        ["bodyId_pre", "bodyId_post", "roiInfo"]].itertuples(index=False)
        for roi, v in json.loads(info).items()}
    assert per_roi == from_json


def test_chandelier_types_target_the_ais(frames: dict[str, pd.DataFrame]) -> None:
    neurons, syn = frames["neurons"], frames["synapses"]
    chandeliers = set(neurons.loc[neurons["cellClass"] == "chandelier", "bodyId"])
    from_chc = syn["pre_pt_root_id"].isin(chandeliers)
    assert from_chc.any(), "seed 7 should draw at least one chandelier type"
    assert (syn.loc[from_chc, "post_compartment"] == "ais").all()
    assert (syn.loc[~from_chc, "post_compartment"] == "ais").mean() < 0.05


def test_deterministic(tmp_path: Path, synth_dir: Path) -> None:
    again = tmp_path / "again"
    synth_connectome(again, neurons=N, edges=M, synapses=S, seed=7)
    for name in ("neurons", "connections", "synapses"):
        assert pq.read_table(again / f"{name}.parquet").equals(
            pq.read_table(synth_dir / f"{name}.parquet")), name
    other = generate(N, M, seed=8)
    assert not np.array_equal(other.weight, generate(N, M, seed=7).weight)


def _top_share(values: np.ndarray, frac: float) -> float:
    """Share of the total held by the top `frac` of entries."""
    s = np.sort(values)[::-1]
    return float(s[: max(1, int(len(s) * frac))].sum() / s.sum())


def test_heavy_tailed_degrees_and_weights(frames: dict[str, pd.DataFrame]) -> None:
    conns = frames["connections"]
    neurons = frames["neurons"]
    rng = np.random.default_rng(0)
    # Baseline: an Erdős–Rényi graph with the same number of nodes and edges.
    er = np.bincount(rng.integers(0, N, size=M), minlength=N)
    for col in ("bodyId_pre", "bodyId_post"):
        deg = conns[col].value_counts().reindex(neurons["bodyId"], fill_value=0).to_numpy()
        assert _top_share(deg, 0.01) > 3 * _top_share(er, 0.01), col
        assert deg.max() > 10 * max(np.median(deg), 1), col
    w = conns["weight"].to_numpy()
    assert np.percentile(w, 99) > 8 * np.median(w)
    # A log-normal/power-law tail: far heavier than an exponential with the same mean.
    exp = rng.exponential(w.mean(), size=len(w))
    assert w.max() > 3 * exp.max()


def test_type_specific_connectivity(frames: dict[str, pd.DataFrame]) -> None:
    neurons, conns = frames["neurons"], frames["connections"]
    type_of = neurons.set_index("bodyId")["type"]
    pre_t = conns["bodyId_pre"].map(type_of).to_numpy()
    post_t = conns["bodyId_post"].map(type_of).to_numpy()

    def concentration(post_types: np.ndarray) -> float:
        pairs = pd.DataFrame({"a": pre_t, "b": post_types}).value_counts()
        top = pairs.groupby(level="a").apply(lambda s: s.nlargest(8).sum())
        return float(top.sum() / len(pre_t))

    shuffled = np.random.default_rng(1).permutation(post_t)  # keeps in-degrees, drops types
    assert concentration(post_t) > concentration(shuffled) + 0.25
    assert neurons["type"].nunique() > 50
    assert neurons.groupby("type")["cellClass"].nunique().max() == 1


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="--synapses"):
        generate(100, 500, synapses=10)
    with pytest.raises(ValueError, match="too dense"):
        generate(10, 1000)


def test_cli_writes_files(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["synth-connectome", str(tmp_path / "o"), "--neurons", "200",
                                      "--edges", "1500", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert len(pq.read_table(tmp_path / "o" / "connections.parquet")) == 1500
    assert not (tmp_path / "o" / "synapses.parquet").exists()
    bad = CliRunner().invoke(app, ["synth-connectome", str(tmp_path / "b"), "--neurons", "3",
                                   "--edges", "100"])
    assert bad.exit_code == 1


def test_both_readers_give_the_same_connections(synth_dir: Path) -> None:
    tables = read_source(str(synth_dir))
    from_syn = read_synapse_table(synth_dir / "synapses.parquet",
                                  neurons_path=synth_dir / "neurons.parquet")
    a = tables.connections.set_index(["bodyIdPre", "bodyIdPost"])["weight"].sort_index()
    b = from_syn.connections.set_index(["bodyIdPre", "bodyIdPost"])["weight"].sort_index()
    assert a.to_dict() == b.to_dict()
    ra = dict(zip(zip(tables.connections["bodyIdPre"], tables.connections["bodyIdPost"],
                      strict=True), map(json.loads, tables.connections["roiInfo"]), strict=True))
    rb = dict(zip(zip(from_syn.connections["bodyIdPre"], from_syn.connections["bodyIdPost"],
                      strict=True), map(json.loads, from_syn.connections["roiInfo"]),
                  strict=True))
    assert ra == rb


@pytest.mark.neo4j
def test_ingests_into_neo4j(tmp_path: Path, driver: neo4j.Driver) -> None:
    from connectome_query.ingest.loader import load
    from tests.support.graph import current_key

    out = tmp_path / "small"
    synth_connectome(out, neurons=400, edges=4000, synapses=12_000, seed=11)
    conns = pq.read_table(out / "connections.parquet").to_pandas()
    load(driver, read_source(str(out)), "t_synth")
    key = current_key(driver, "t_synth")
    rows, _, _ = driver.execute_query(
        "MATCH (a:Neuron {dataset: $d})-[c:ConnectsTo]->(b) "
        "RETURN count(c) AS n, sum(c.weight) AS w, "
        "sum(a.bodyId % 1000003 * c.weight + b.bodyId % 1000003) AS h", d=key)
    expected_h = int(((conns["bodyId_pre"] % 1000003) * conns["weight"]
                      + conns["bodyId_post"] % 1000003).sum())
    assert (rows[0]["n"], rows[0]["w"], rows[0]["h"]) == (4000, 12_000, expected_h)
    n, _, _ = driver.execute_query("MATCH (n:Neuron {dataset: $d}) RETURN count(n) AS n", d=key)
    assert n[0]["n"] == 400
