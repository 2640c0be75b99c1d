"""The offline importer builds the same graph as the online loader (on small synthetic sets),
with FlyWire- and MICrONS-range ids too, and a failed --replace keeps the old database."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import neo4j
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectome_query.graphdb.local_server import LocalNeo4j
from connectome_query.graphdb.settings import LocalServerConfig, cache_dir
from connectome_query.ingest.bulk_import import BulkImportError, offline_import
from connectome_query.ingest.loader import load
from connectome_query.ingest.readers.synapse_table import read_synapse_table
from connectome_query.ingest.sources import open_source
from connectome_query.ingest.synth_connectome import ID_RANGES, synth_connectome
from tests.support.fingerprint import fingerprint
from tests.support.graph import current_key
from tests.support.net import free_port

pytestmark = pytest.mark.neo4j

FLYWIRE_LOW = ID_RANGES["flywire"][0]
MICRONS_LOW = ID_RANGES["microns"][0]



@pytest.fixture(scope="module")
def fresh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNeo4j]:
    """A second, empty server of our own (the importer rebuilds its whole database)."""
    config = LocalServerConfig(
        home=tmp_path_factory.mktemp("bulk-home"), cache=cache_dir(), bolt_port=free_port(),
        heap=os.environ.get("CONNECTOME_TEST_NEO4J_HEAP", "768m"), pagecache="256m")
    server = LocalNeo4j(config)
    try:
        yield server
    finally:
        server.stop()


def _summary(drv: neo4j.Driver, dataset: str) -> dict[str, Any]:
    """Counts, property keys per label/type, and weight checksums of the current version."""
    key = current_key(drv, dataset)

    def q(text: str) -> list[dict[str, Any]]:
        records, _, _ = drv.execute_query(text, d=key)
        return [r.data() for r in records]

    out: dict[str, Any] = {}
    out["labels"] = sorted(
        (tuple(sorted(r["labels"])), r["n"], tuple(sorted(r["keys"]))) for r in q(
            "MATCH (n) WHERE n.dataset = $d WITH labels(n) AS labels, n "
            "UNWIND (CASE WHEN size(keys(n)) = 0 THEN [null] ELSE keys(n) END) AS k "
            "WITH labels, count(DISTINCT n) AS n, collect(DISTINCT k) AS keys "
            "RETURN labels, n, keys"))
    out["rels"] = sorted(
        (r["t"], r["n"], tuple(sorted(r["keys"]))) for r in q(
            "MATCH (a)-[r]->(b) WHERE a.dataset = $d "
            "UNWIND keys(r) AS k WITH type(r) AS t, count(DISTINCT r) AS n, "
            "collect(DISTINCT k) AS keys RETURN t, n, keys"))
    out["weights"] = q(
        "MATCH (a:Neuron {dataset: $d})-[c:ConnectsTo]->(b) RETURN count(c) AS n, "
        "sum(c.weight) AS w, sum((a.bodyId % 1000003) * c.weight + b.bodyId % 999983) AS h, "
        "sum(size(c.rois)) AS rois, sum(reduce(s = 0, x IN c.roiWeights | s + x)) AS rw")
    out["neurons"] = sorted(
        (r["props"]["bodyId"], sorted((k, str(v)) for k, v in r["props"].items()
                                      if k != "dataset"))
        for r in q("MATCH (n:Neuron {dataset: $d}) RETURN properties(n) AS props"))
    out["synapses"] = q(
        "MATCH (:Neuron {dataset: $d})-[:Contains]->(ss:SynapseSet)-[:Contains]->(s:Synapse) "
        "MATCH (ss)-[:SynapsesTo]->(post:Neuron) WHERE post.bodyId = s.postBodyId "
        "RETURN count(s) AS n, sum(s.synapseId % 7919) AS h, "
        "sum(s.location.x) AS x, count(DISTINCT s.postCompartment) AS comps")
    # neuPrint's postsynaptic side: one post node per synapse, holding the same values
    out["post_sides"] = q(
        "MATCH (a:Neuron {dataset: $d})-[:Contains]->(ss)-[:ConnectsTo]->(ps)"
        "<-[:Contains]-(b:Neuron) MATCH (ss)-[:Contains]->(s)-[:SynapsesTo]->(p)<-[:Contains]-(ps) "
        "WHERE s.type = 'pre' AND p.type = 'post' AND b.bodyId = p.postBodyId "
        "RETURN count(p) AS n, sum(p.synapseId % 7919) AS h, sum(p.location.x) AS x, "
        "sum(p.confidence) AS c, count(p.roi) AS rois, "
        "sum(size([k IN keys(p) WHERE p[k] = true])) AS flags, "
        "sum(CASE WHEN all(k IN keys(s) + keys(p) WHERE k = 'type' OR s[k] = p[k]) "
        "THEN 1 ELSE 0 END) AS same")
    out["meta"] = q("MATCH (m:Meta {dataset: $d}) RETURN m.neuronCount AS n, "
                    "m.chemicalSynapses AS s, m.synapseCount AS syn, m.status AS status")
    return out


def test_offline_import_matches_loader(tmp_path: Path, driver: neo4j.Driver,
                                       fresh_server: LocalNeo4j) -> None:
    folder = tmp_path / "syn"
    synth_connectome(folder, neurons=150, edges=1200, synapses=5000, seed=5)
    tables = read_synapse_table(folder / "synapses.parquet",
                                neurons_path=folder / "neurons.parquet")
    load(driver, tables, "t_bulk")
    report, timings = offline_import(fresh_server, tables, "t_bulk")
    assert report.chemical_connections == len(tables.connections)
    assert timings.total > 0
    target = fresh_server.target()
    with neo4j.GraphDatabase.driver(target.uri, auth=(target.user, target.password)) as bulk:
        expected, got = _summary(driver, "t_bulk"), _summary(bulk, "t_bulk")
        for key in expected:
            assert got[key] == expected[key], key
        assert got["weights"][0]["n"] == 1200
        sides = got["post_sides"][0]
        assert sides["n"] == sides["same"] == got["synapses"][0]["n"] > 0
        # The constraints and indexes were built over the imported data.
        names, _, _ = bulk.execute_query("SHOW CONSTRAINTS YIELD name RETURN collect(name) AS n")
        assert "neuron_body_unique" in names[0]["n"]

        # A second import refuses: the database is no longer empty.
        with pytest.raises(BulkImportError, match="already holds data"):
            offline_import(fresh_server, tables, "t_bulk2")
        rows, _, _ = bulk.execute_query("MATCH (m:Meta) RETURN collect(m.name) AS d")
        assert rows[0]["d"] == ["t_bulk"]


def _mixed_range_ids(folder: Path) -> list[int]:
    """Move every other FlyWire-range body id of a synthetic set into the MICrONS range, in
    every file; return the ids."""
    tables = {name: pq.read_table(folder / f"{name}.parquet")
              for name in ("neurons", "connections", "synapses")}
    ids = np.array(tables["neurons"].column("bodyId").to_pylist(), dtype=np.int64)
    moved = dict(zip(ids[::2].tolist(), (ids[::2] - FLYWIRE_LOW + MICRONS_LOW).tolist(),
                     strict=True))
    columns = {"neurons": ["bodyId"], "connections": ["bodyId_pre", "bodyId_post"],
               "synapses": ["pre_pt_root_id", "post_pt_root_id"]}
    for name, table in tables.items():
        for column in columns[name]:
            values = [moved.get(v, v) for v in table.column(column).to_pylist()]
            table = table.set_column(table.schema.get_field_index(column), column,
                                     pa.array(values, pa.int64()))
        pq.write_table(table, folder / f"{name}.parquet")
    return [moved.get(int(v), int(v)) for v in ids]


def test_offline_import_takes_real_range_ids(tmp_path: Path, driver: neo4j.Driver,
                                             fresh_server: LocalNeo4j,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """FlyWire- and MICrONS-range root ids (above 2^56, the importer's integer id limit) import
    exactly, as the loader writes them; --replace discards what the database held; and when
    neo4j-admin fails during a --replace, the previous store comes back whole."""
    folder = tmp_path / "real-ids"
    synth_connectome(folder, neurons=120, edges=900, synapses=3000, seed=9, id_range="flywire")
    raw = _mixed_range_ids(folder)
    assert min(raw) > 2**56 and max(raw) > MICRONS_LOW > FLYWIRE_LOW
    source = open_source(str(folder / "synapses.parquet"), neurons=folder / "neurons.parquet")
    load(driver, source, "t_bulk_ids")
    report, _ = offline_import(fresh_server, source, "t_bulk_ids", replace=True)
    assert report.neurons == len(raw)
    target = fresh_server.target()
    with neo4j.GraphDatabase.driver(target.uri, auth=(target.user, target.password)) as bulk:
        expected, got = _summary(driver, "t_bulk_ids"), _summary(bulk, "t_bulk_ids")
        for key in expected:
            assert got[key] == expected[key], key
        ids, _, _ = bulk.execute_query("MATCH (n:Neuron {dataset: $d}) RETURN n.bodyId AS id",
                                       d=current_key(bulk, "t_bulk_ids"))
        assert {r["id"] for r in ids} == set(raw)
        names, _, _ = bulk.execute_query("MATCH (m:Meta) RETURN collect(m.name) AS d")
        assert names[0]["d"] == ["t_bulk_ids"]  # --replace discarded the earlier import
        before = fingerprint(bulk, "t_bulk_ids")
    failed = subprocess.CompletedProcess(["neo4j-admin"], 1, "", "the disk is full")
    monkeypatch.setattr(fresh_server, "admin", lambda *args, **kwargs: failed)
    with pytest.raises(BulkImportError, match="disk is full"):
        offline_import(fresh_server, open_source(str(folder)), "t_bulk_after", replace=True)
    monkeypatch.undo()
    target = fresh_server.start()
    with neo4j.GraphDatabase.driver(target.uri, auth=(target.user, target.password)) as bulk:
        assert fingerprint(bulk, "t_bulk_ids") == before
        names, _, _ = bulk.execute_query("MATCH (m:Meta) RETURN collect(m.name) AS d")
        assert names[0]["d"] == ["t_bulk_ids"]


def test_offline_import_keeps_published_weights(driver: neo4j.Driver,
                                                fresh_server: LocalNeo4j) -> None:
    """Cook 2020's half-section weights: the import writes `publishedWeight` as the loader does,
    equal to the published values."""
    from connectome_query.ingest.sources import read_source

    tables = read_source("cook2020_pharynx")
    chem = tables.connections[tables.connections["kind"] == "chemical"]
    load(driver, tables, "t_bulk_cook2020")
    offline_import(fresh_server, tables, "t_bulk_cook2020", replace=True)
    target = fresh_server.target()
    with neo4j.GraphDatabase.driver(target.uri, auth=(target.user, target.password)) as bulk:
        expected, got = _summary(driver, "t_bulk_cook2020"), _summary(bulk, "t_bulk_cook2020")
        for key in expected:
            assert got[key] == expected[key], key
        rows, _, _ = bulk.execute_query(
            "MATCH (:Neuron {dataset: $d})-[c:ConnectsTo]->() RETURN sum(c.publishedWeight) AS p, "
            "count(c.publishedWeight) AS n", d=current_key(bulk, "t_bulk_cook2020"))
    assert rows[0]["n"] == len(chem)
    assert rows[0]["p"] == pytest.approx(float(chem["publishedWeight"].sum()))
