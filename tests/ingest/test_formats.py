"""neuPrint CSV and CAVE-style synapse tables, loaded and compared with networkx/pandas."""

from __future__ import annotations

from pathlib import Path

import neo4j
import numpy as np
import pandas as pd
import pytest

from connectome_query.ingest.loader import load
from connectome_query.ingest.sources import read_source
from tests.support.fingerprint import fingerprint
from tests.support.graph import current_key
from tests.support.neuprint_files import random_neuprint

pytestmark = pytest.mark.neo4j


def edges_in_graph(driver: neo4j.Driver, dataset: str) -> dict[tuple[int, int], int]:
    rows, _, _ = driver.execute_query(
        "MATCH (a:Neuron {dataset: $d})-[c:ConnectsTo]->(b) "
        "RETURN a.bodyId AS a, b.bodyId AS b, c.weight AS w", d=current_key(driver, dataset))
    return {(r["a"], r["b"]): r["w"] for r in rows}


def test_neuprint_csv_matches_networkx(tmp_path: Path, driver: neo4j.Driver) -> None:
    g = random_neuprint(tmp_path / "np", seed=1)
    load(driver, read_source(str(tmp_path / "np")), "t_neuprint")
    assert edges_in_graph(driver, "t_neuprint") == {
        (a, b): d["weight"] for a, b, d in g.edges(data=True)}
    rows, _, _ = driver.execute_query(
        "MATCH (n:Neuron {dataset: $d}) RETURN n.bodyId AS id, n.post AS post, "
        "n.somaLocation AS soma", d=current_key(driver, "t_neuprint"))
    post = {r["id"]: r["post"] for r in rows}
    assert post == {int(v): int(d) for v, d in g.in_degree(weight="weight")}
    assert all(r["soma"] is not None for r in rows)


def _content(driver: neo4j.Driver, dataset: str) -> dict:
    """The current version's fingerprint, less what names the version."""
    found = fingerprint(driver, dataset)
    return {k: v for k, v in found.items() if k != "key"}


def test_reingest_is_idempotent_and_replaces(tmp_path: Path, driver: neo4j.Driver) -> None:
    random_neuprint(tmp_path / "a", seed=2)
    first_load = load(driver, read_source(str(tmp_path / "a")), "t_idem")
    first = _content(driver, "t_idem")
    again = load(driver, read_source(str(tmp_path / "a")), "t_idem")
    assert again.version == first_load.version + 1
    assert _content(driver, "t_idem") == first
    # A different file under the same name replaces the dataset, leaving no stale edges.
    g2 = random_neuprint(tmp_path / "b", seed=3, n=30, m=100)
    load(driver, read_source(str(tmp_path / "b")), "t_idem")
    assert edges_in_graph(driver, "t_idem") == {
        (a, b): d["weight"] for a, b, d in g2.edges(data=True)}
    records, _, _ = driver.execute_query(
        "MATCH (n:Neuron {dataset: $d}) RETURN count(n) AS n", d=current_key(driver, "t_idem"))
    assert records[0]["n"] == g2.number_of_nodes()


def synapse_table(seed: int, n: int = 3000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    bodies = rng.choice(2**62, size=80, replace=False).astype(np.int64) + 1
    pre = rng.choice(bodies, size=n)
    post = rng.choice(bodies, size=n)
    pos = rng.integers(0, 50_000, size=(n, 3))
    return pd.DataFrame({
        "id": np.arange(10, 10 + n),
        "pre_pt_root_id": pre, "post_pt_root_id": post,
        "ctr_pt_position": [f"[{x} {y} {z}]" for x, y, z in pos],
        "size": rng.integers(50, 5000, size=n),
        "neuropil": rng.choice(["LH", "MB_CA", "AL"], size=n),
    })


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_cave_synapse_table_aggregates_weights(
    tmp_path: Path, driver: neo4j.Driver, suffix: str
) -> None:
    raw = synapse_table(seed=4)
    path = tmp_path / f"synapses.{suffix}"
    if suffix == "csv":
        raw.to_csv(path, index=False)
    else:
        raw.assign(ctr_pt_position=[[int(v) for v in s.strip("[]").split()]
                                    for s in raw["ctr_pt_position"]]).to_parquet(path)
    dataset = f"t_cave_{suffix}"
    load(driver, read_source(str(path), voxel_size=(4.0, 4.0, 40.0)), dataset)
    valid = raw[raw["pre_pt_root_id"] != raw["post_pt_root_id"]]
    expected = valid.groupby(["pre_pt_root_id", "post_pt_root_id"]).size()
    assert edges_in_graph(driver, dataset) == {(int(a), int(b)): int(w)
                                               for (a, b), w in expected.items()}
    first = valid.iloc[0]
    rows, _, _ = driver.execute_query(
        "MATCH (s:Synapse {dataset: $d, synapseId: $id}) RETURN s.location AS loc, s.roi AS roi",
        d=current_key(driver, dataset), id=int(first["id"]))
    x, y, z = (int(v) for v in first["ctr_pt_position"].strip("[]").split())
    loc = rows[0]["loc"]
    assert (loc.x, loc.y, loc.z) == (x * 4.0, y * 4.0, z * 40.0)
    assert rows[0]["roi"] == first["neuropil"]
    count, _, _ = driver.execute_query(
        "MATCH (:Neuron {dataset: $d})-[:Contains]->(:SynapseSet)-[:Contains]->(s:Synapse) "
        "RETURN count(s) AS n", d=current_key(driver, dataset))
    assert count[0]["n"] == len(valid)
