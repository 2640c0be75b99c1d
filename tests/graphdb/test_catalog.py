"""Dataset versions: each load is a new version; the switch is atomic; failures leave nothing."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import neo4j
import numpy as np
import pandas as pd
import pytest

from connectome_query.graphdb import catalog
from connectome_query.ingest import loader
from connectome_query.ingest.sources import read_source
from connectome_query.schema.model import POST_SYN, PRE_SYN, scope_label
from tests.support.fingerprint import fingerprint, graph_fingerprint
from tests.support.neuprint_files import write_neuprint

pytestmark = pytest.mark.neo4j


def _edges(driver: neo4j.Driver, key: str) -> dict[tuple[int, int], int]:
    records, _, _ = driver.execute_query(
        "MATCH (a:Neuron {dataset: $d})-[c:ConnectsTo]->(b) "
        "RETURN a.bodyId AS a, b.bodyId AS b, c.weight AS w", d=key)
    return {(r["a"], r["b"]): r["w"] for r in records}


def _expected(g: Any) -> dict[tuple[int, int], int]:
    return {(a, b): d["weight"] for a, b, d in g.edges(data=True)}


def test_reload_keeps_the_previous_version(tmp_path: Path, driver: neo4j.Driver) -> None:
    g1 = write_neuprint(tmp_path / "one", neurons=40, edges=150, gap=10, seed=1)
    g2 = write_neuprint(tmp_path / "two", neurons=30, edges=90, gap=10, seed=2)
    first = loader.load(driver, read_source(str(tmp_path / "one")), "t_versions")
    second = loader.load(driver, read_source(str(tmp_path / "two")), "t_versions")
    assert second.version == first.version + 1
    now = catalog.resolve(driver, "t_versions")
    old = catalog.resolve(driver, "t_versions", first.version)
    assert now.version == second.version and now.current and not old.current
    assert _edges(driver, now.key) == _expected(g2)
    assert _edges(driver, old.key) == _expected(g1)
    listed = [v for v in catalog.list_versions(driver, "t_versions")]
    assert [(v.version, v.current) for v in listed][-2:] == [(first.version, False),
                                                             (second.version, True)]
    with pytest.raises(ValueError, match="current version"):
        catalog.delete_version(driver, now)
    catalog.delete_version(driver, old)
    assert _edges(driver, old.key) == {}
    with pytest.raises(catalog.UnknownDataset, match="no complete version"):
        catalog.resolve(driver, "t_versions", first.version)
    assert _edges(driver, catalog.resolve(driver, "t_versions").key) == _expected(g2)


def _synapse_table(path: Path, seed: int, rows: int = 60) -> Path:
    """A small CAVE-style synapse table (no autapses)."""
    rng = np.random.default_rng(seed)
    pre = rng.integers(1, 8, rows)
    post = pre + rng.integers(1, 5, rows)
    pd.DataFrame({"id": np.arange(1, rows + 1), "pre_pt_root_id": pre, "post_pt_root_id": post,
                  "ctr_pt_position": [f"[{x}, {y}, {z}]" for x, y, z in
                                      rng.integers(0, 1000, (rows, 3))]}).to_csv(path, index=False)
    return path


def _count(driver: neo4j.Driver, label: str) -> int:
    return driver.execute_query(f"MATCH (n:`{label}`) RETURN count(n) AS n").records[0]["n"]


def test_deleting_a_version_removes_its_synapse_sides_and_indexes(tmp_path: Path,
                                                                driver: neo4j.Driver) -> None:
    for seed in (1, 2):
        loader.load(driver, read_source(str(_synapse_table(tmp_path / f"s{seed}.csv", seed))),
                    "t_sides")
    now, old = catalog.resolve(driver, "t_sides"), catalog.resolve(driver, "t_sides", 1)
    for version in (now, old):  # one postsynaptic side per synapse, with the same location
        assert _count(driver, scope_label(version.key, POST_SYN)) == 60
        assert _count(driver, scope_label(version.key, PRE_SYN)) == 60
        records, _, _ = driver.execute_query(
            "MATCH (s:Synapse {dataset: $k})-[:SynapsesTo]->(p) "
            "RETURN count(*) AS n, sum(CASE WHEN p.location = s.location AND "
            "p.postBodyId = s.postBodyId THEN 1 ELSE 0 END) AS same", k=version.key)
        assert records[0]["n"] == records[0]["same"] == 60
    plan = driver.execute_query(f"EXPLAIN MATCH (n:`{scope_label(old.key, 'Neuron')}`) "
                                "WHERE n.bodyId IN [1, 2] RETURN n").summary.plan
    assert "NodeIndexSeek" in str(plan)  # the version's own index on bodyId
    catalog.delete_version(driver, old)
    left = driver.execute_query("MATCH (n) WHERE n.dataset = $k RETURN count(n) AS n",
                                k=old.key).records[0]["n"]
    assert left == 0
    indexes = driver.execute_query("SHOW INDEXES YIELD name RETURN collect(name) AS n"
                                   ).records[0]["n"]
    assert not [n for n in indexes if old.key in n]
    assert [n for n in indexes if now.key in n]
    assert _count(driver, scope_label(now.key, POST_SYN)) == 60


def test_delete_command_refuses_the_current_version_unless_told(tmp_path: Path,
                                                                driver: neo4j.Driver) -> None:
    from typer.testing import CliRunner

    from connectome_query.cli.main import app

    name = "t_delete_cmd"
    graphs, versions = [], []
    for seed in (41, 42):
        graphs.append(write_neuprint(tmp_path / str(seed), neurons=20, edges=40, gap=4,
                                     seed=seed))
        versions.append(loader.load(driver, read_source(str(tmp_path / str(seed))),
                                    name).version)

    def run(*args: str) -> Any:
        return CliRunner().invoke(app, ["datasets-delete", name, *args])

    refused = run("--version", str(versions[1]))
    assert refused.exit_code == 1, refused.output
    assert "is the current version" in refused.output and "--current" in refused.output
    assert _edges(driver, catalog.resolve(driver, name).key) == _expected(graphs[1])
    missing = run("--version", str(versions[1] + 5))
    assert missing.exit_code == 1 and f"no complete version {versions[1] + 5}" in missing.output
    done = run("--version", str(versions[1]), "--current")
    assert done.exit_code == 0, done.output
    assert f"version {versions[0]} is now current" in done.output
    now = catalog.resolve(driver, name)
    assert now.version == versions[0] and _edges(driver, now.key) == _expected(graphs[0])
    last = run("--version", str(versions[0]), "--current")
    assert last.exit_code == 0 and "no version left" in last.output, last.output
    with pytest.raises(catalog.UnknownDataset):
        catalog.resolve(driver, name)


def test_failed_load_leaves_the_graph_as_it_was(tmp_path: Path, driver: neo4j.Driver,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    g = write_neuprint(tmp_path / "good", neurons=40, edges=200, gap=10, seed=3)
    loader.load(driver, read_source(str(tmp_path / "good")), "t_fail_mid")
    write_neuprint(tmp_path / "other", neurons=40, edges=200, gap=10, seed=4)
    before, whole = fingerprint(driver, "t_fail_mid"), graph_fingerprint(driver)
    real = loader._write_batch
    calls = {"n": 0}

    def failing(*args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:  # after two batches are in
            raise RuntimeError("the disk is full")
        real(*args, **kwargs)

    monkeypatch.setattr(loader, "_write_batch", failing)
    with pytest.raises(RuntimeError, match="disk is full"):
        loader.load(driver, read_source(str(tmp_path / "other")), "t_fail_mid", batch_size=20)
    assert calls["n"] == 3
    assert fingerprint(driver, "t_fail_mid") == before
    assert graph_fingerprint(driver) == whole
    assert _edges(driver, catalog.resolve(driver, "t_fail_mid").key) == _expected(g)


def test_a_dead_load_is_swept_by_the_next(tmp_path: Path, driver: neo4j.Driver) -> None:
    write_neuprint(tmp_path / "d", neurons=20, edges=40, gap=4, seed=5)
    version = catalog.begin_version(driver, "t_swept")
    driver.execute_query("MATCH (m:Meta {dataset: $k}) SET m.owner = $owner",
                         k=version.key, owner=f"{socket.gethostname()}:999999999")
    driver.execute_query("CREATE (:Neuron:Segment {dataset: $k, bodyId: 1})", k=version.key)
    with pytest.raises(catalog.UnknownDataset):
        catalog.resolve(driver, "t_swept")  # a loading version is never current
    report = loader.load(driver, read_source(str(tmp_path / "d")), "t_swept")
    # the dead version was never seen, so its number is free again; its node is gone
    assert report.version == version.version
    records, _, _ = driver.execute_query(
        "MATCH (n:Neuron {bodyId: 1}) WHERE n.dataset STARTS WITH 't_swept@' "
        "RETURN count(n) AS n")
    assert records[0]["n"] == 0
    assert fingerprint(driver, "t_swept")["loadingVersions"] == 0


def test_concurrent_loads_get_different_versions(driver: neo4j.Driver) -> None:
    a = catalog.begin_version(driver, "t_race")
    b = catalog.begin_version(driver, "t_race")
    assert a.version != b.version and a.key != b.key
    for v in (a, b):
        catalog.delete_version(driver, v)


def test_a_dataset_from_before_versions_is_current(driver: neo4j.Driver) -> None:
    """A Meta without `version` (written before versions existed) is version 1, current."""
    driver.execute_query("MATCH (n) WHERE n.dataset = 't_legacy' OR n.dataset STARTS WITH "
                         "'t_legacy@' DETACH DELETE n")
    driver.execute_query("CREATE (:Meta {dataset: 't_legacy', status: 'complete'}), "
                         "(:Neuron:Segment {dataset: 't_legacy', bodyId: 7})")
    legacy = catalog.resolve(driver, "t_legacy")
    assert (legacy.key, legacy.version, legacy.current) == ("t_legacy", 1, True)
    nxt = catalog.begin_version(driver, "t_legacy")
    assert nxt.version == 2
    catalog.publish(driver, nxt, {"source": "test"})
    assert catalog.resolve(driver, "t_legacy").key == nxt.key
    assert catalog.resolve(driver, "t_legacy", 1).key == "t_legacy"


def test_access_setting_carries_over_and_metadata_is_replaced(tmp_path: Path,
                                                              driver: neo4j.Driver) -> None:
    write_neuprint(tmp_path / "p", neurons=20, edges=40, gap=4, seed=6)
    tables = read_source(str(tmp_path / "p"))
    tables.meta["neuroglancerSource"] = "precomputed://example"
    loader.load(driver, tables, "t_meta")
    catalog.set_public(driver, "t_meta", True)
    loader.load(driver, read_source(str(tmp_path / "p")), "t_meta")
    records, _, _ = driver.execute_query("MATCH (m:Meta {dataset: $k}) RETURN m",
                                         k=catalog.resolve(driver, "t_meta").key)
    meta = records[0]["m"]
    assert meta["public"] is True
    assert "neuroglancerSource" not in meta  # not merged from the earlier load
