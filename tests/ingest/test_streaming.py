"""Streaming ingest: tables read in small chunks, with ids and connections spilled to disk, give
the graph pandas computes from the whole file; errors name the right row across chunk
boundaries; a failure after writing began leaves the database as it was; memory does not grow
with the rows."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import neo4j
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectome_query.ingest import loader
from connectome_query.ingest.aggregate import PairCounter, RepeatFinder
from connectome_query.ingest.errors import IngestError
from connectome_query.ingest.readers import files
from connectome_query.ingest.sources import read_source
from tests.support.bad_files import MICRONS, load_ok, refused_cleanly, synapse_csv
from tests.support.graph import current_key

FIXTURES_OK: dict = {"deadline": None,
                     "suppress_health_check": [HealthCheck.function_scoped_fixture]}


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Chunks of 1,000 rows, 4 KiB of CSV at a time, spilling past 1,000 synapses."""
    monkeypatch.setenv("CONNECTOME_INGEST_CHUNK_ROWS", "1000")
    monkeypatch.setenv("CONNECTOME_INGEST_SPILL_ROWS", "1000")
    monkeypatch.setattr(files, "CSV_BLOCK_BYTES", 4096)
    yield


def cave_frame(n: int, seed: int) -> pd.DataFrame:
    """A CAVE-style table in random order: MICrONS-range ids, ROIs (some missing), a few
    autapses and rows on root id 0."""
    rng = np.random.default_rng(seed)
    bodies = MICRONS + rng.choice(10**9, size=60, replace=False)
    pre, post = rng.choice(bodies, size=n), rng.choice(bodies, size=n)
    pre[rng.random(n) < 0.01] = 0
    post[rng.random(n) < 0.01] = pre[rng.random(n) < 0.01][:1] if n else 0
    roi = rng.choice(["LH", "MB_CA", "AL_R", None], size=n, p=[0.4, 0.3, 0.2, 0.1])
    pos = rng.integers(0, 50_000, size=(n, 3))
    return pd.DataFrame({
        "id": rng.permutation(np.arange(1, n + 1) * 7),
        "pre_pt_root_id": pre, "post_pt_root_id": post,
        "ctr_pt_position": [f"[{x} {y} {z}]" for x, y, z in pos],
        "size": rng.integers(1, 500, size=n), "neuropil": roi,
        "post_compartment": rng.choice(["dendrite", "ais", "soma", "unknown"], size=n),
    })


@settings(max_examples=25, **FIXTURES_OK)
@given(row=st.integers(0, 2999), fmt=st.sampled_from(["csv", "parquet"]),
       column=st.sampled_from(["pre_pt_root_id", "id", "ctr_pt_position", "neuropil"]))
def test_errors_name_the_row_across_chunks(tmp_path_factory: pytest.TempPathFactory,
                                           small_chunks: None, row: int, fmt: str,
                                           column: str) -> None:
    frame = cave_frame(3000, seed=1).astype({"pre_pt_root_id": str, "id": str})
    frame.loc[row, column] = {"pre_pt_root_id": "1.5", "id": "x", "ctr_pt_position": "[1 2]",
                              "neuropil": "a\x00b"}[column]
    path = tmp_path_factory.mktemp("rows") / f"syn.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path,
                       row_group_size=700)
    with pytest.raises(IngestError) as err:
        read_source(str(path))
    first = 2 if fmt == "csv" else 1
    assert (err.value.row, err.value.column) == (row + first, column), str(err.value)


@settings(max_examples=40, deadline=None)
@given(ids=st.lists(st.integers(-(2**63), 2**63 - 1), max_size=300),
       repeat=st.integers(0, 299), memory=st.integers(1, 50))
def test_spilled_repeat_check_matches_pandas(ids: list[int], repeat: int, memory: int) -> None:
    if ids:
        ids = ids + [ids[repeat % len(ids)]] * (repeat % 3)
    rows = np.arange(2, len(ids) + 2)
    finder = RepeatFinder(memory_ids=memory)
    for start in range(0, len(ids), 17):
        finder.add(np.array(ids[start:start + 17], dtype=np.int64), rows[start:start + 17])
    found = finder.first()
    dup = pd.Series(ids, dtype="int64").duplicated()
    if not dup.any():
        assert found is None
    else:
        at = int(np.flatnonzero(dup.to_numpy())[0])
        assert found == (ids[at], int(rows[at]))


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9), st.integers(-1, 3)),
                     max_size=400), memory=st.integers(1, 100))
def test_spilled_connection_counts_match_pandas(rows: list[tuple[int, int, int]],
                                                memory: int) -> None:
    bodies = np.array(sorted({MICRONS + a for a, _, _ in rows} | {MICRONS + b for _, b, _ in rows}),
                      dtype=np.int64)
    counter = PairCounter(memory_rows=memory)
    for start in range(0, len(rows), 23):
        part = np.array(rows[start:start + 23], dtype=np.int64).reshape(-1, 3)
        counter.add(MICRONS + part[:, 0], MICRONS + part[:, 1], part[:, 2])
    rank = np.array([3, 1, 0, 2])  # codes as first seen -> their rank by name
    store = counter.finish(bodies, rank)
    buckets = list(store.buckets())
    store.close()

    def joined(name: str) -> np.ndarray:
        return np.concatenate([getattr(b, name) for b in buckets]) if buckets else np.zeros(0)
    by_key = np.argsort(joined("keys"))
    by_roi = np.lexsort((joined("rois"), joined("roi_keys")))
    frame = pd.DataFrame(rows, columns=["a", "b", "r"], dtype="int64")
    frame["key"] = (np.searchsorted(bodies, MICRONS + frame["a"]) * len(bodies)
                    + np.searchsorted(bodies, MICRONS + frame["b"]))
    pairs = frame.groupby("key").size()
    assert joined("keys")[by_key].tolist() == pairs.index.tolist()
    assert joined("counts")[by_key].tolist() == pairs.tolist()
    assert (store.connections, store.synapses) == (len(pairs), len(rows))
    with_roi = frame[frame["r"] >= 0].assign(rank=lambda f: rank[f["r"]])
    per_roi = with_roi.groupby(["key", "rank"]).size()
    assert list(zip(joined("roi_keys")[by_roi].tolist(), joined("rois")[by_roi].tolist(),
                    joined("roi_counts")[by_roi].tolist(), strict=True)) == [
        (k, r, n) for (k, r), n in per_roi.items()]


def test_spill_folders_are_removed(tmp_path: Path) -> None:
    """Nothing stays in the spill folder: after a repeat search whose last rows were still held
    in memory, and after a store of connection counts that nobody closed is collected."""
    repeats = RepeatFinder(memory_ids=10, spill_dir=tmp_path)
    for start in range(0, 40, 10):  # spilled after the 2nd and the 4th
        repeats.add(np.arange(start, start + 10), np.arange(start, start + 10))
    repeats.add(np.array([3]), np.array([99]))  # held, spilled by first()
    assert repeats.first() == (3, 99)
    assert list(tmp_path.iterdir()) == []
    counter = PairCounter(10, spill_dir=tmp_path)
    rng = np.random.default_rng(0)
    for _ in range(5):
        counter.add(rng.integers(0, 8, 10), rng.integers(0, 8, 10), np.full(10, -1))
    store = counter.finish(np.arange(8), np.zeros(0, dtype=np.int64))
    assert store.synapses == 50 and list(tmp_path.iterdir())
    del store
    gc.collect()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.neo4j
def test_streamed_load_matches_pandas(tmp_path: Path, driver: neo4j.Driver,
                                      small_chunks: None) -> None:
    frame = cave_frame(6000, seed=2)
    path = tmp_path / "syn.csv"
    frame.to_csv(path, index=False)
    load_ok(["ingest", str(path), "-d", "t_stream", "--voxel-size", "4,4,40",
             "--batch-size", "700"])
    valid = frame[(frame["pre_pt_root_id"] != frame["post_pt_root_id"])
                  & (frame["pre_pt_root_id"] != 0) & (frame["post_pt_root_id"] != 0)]
    key = current_key(driver, "t_stream")

    def q(text: str) -> list[dict[str, Any]]:
        records, _, _ = driver.execute_query(text, d=key)
        return [r.data() for r in records]

    # a connection with no ROI carries roiInfo '{}' (neuPrint's clients read it on every one)
    edges = {(r["a"], r["b"]): (r["w"], json.loads(r["info"] or "{}") or None)
             for r in q("MATCH (a:Neuron {dataset: $d})-[c:ConnectsTo]->(b) RETURN a.bodyId AS a, "
                        "b.bodyId AS b, c.weight AS w, c.roiInfo AS info")}
    weights = valid.groupby(["pre_pt_root_id", "post_pt_root_id"]).size()
    per_roi = valid.dropna(subset=["neuropil"]).groupby(
        ["pre_pt_root_id", "post_pt_root_id", "neuropil"]).size()
    expected = {}
    for (a, b), w in weights.items():
        rois = {roi: {"pre": int(n), "post": int(n)} for roi, n in
                per_roi.loc[(a, b)].items()} if (a, b) in per_roi.index else None
        expected[(int(a), int(b))] = (int(w), rois)
    assert edges == expected
    counts = q("MATCH (:Neuron {dataset: $d})-[:Contains]->(ss:SynapseSet)-[:Contains]->"
               "(s:Synapse) RETURN count(DISTINCT ss) AS sets, count(s) AS n, "
               "sum(s.location.z) AS z")[0]
    assert counts["sets"] == len(weights) and counts["n"] == len(valid)
    z = [float(p.strip("[]").split()[2]) * 40.0 for p in valid["ctr_pt_position"]]
    assert counts["z"] == pytest.approx(sum(z))
    out = q("MATCH (n:Neuron {dataset: $d}) RETURN n.bodyId AS id, n.pre AS pre")
    assert {r["id"]: r["pre"] for r in out if r["pre"]} == {
        int(k): int(v) for k, v in valid.groupby("pre_pt_root_id").size().items()}
    meta = q("MATCH (m:Meta {dataset: $d}) RETURN m.droppedSynapses AS dropped")[0]
    assert meta["dropped"] == len(frame) - len(valid)


@pytest.mark.neo4j
def test_a_file_changed_while_loading_changes_nothing(tmp_path: Path, driver: neo4j.Driver,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = synapse_csv(tmp_path / "syn.csv")
    load_ok(["ingest", str(path), "-d", "t_changed"])
    real = loader._write_batch

    def edit_then_write(*args: Any, **kwargs: Any) -> None:
        with path.open("a") as f:  # someone appends to the file during the load
            f.write('"999","1","2","[1 2 3]","5","0.5","dendrite","LH"\n')
        real(*args, **kwargs)

    monkeypatch.setattr(loader, "_write_batch", edit_then_write)
    refused_cleanly(driver, ["ingest", str(path), "-d", "t_changed"], "t_changed",
                    ["syn.csv", "changed while it was being loaded", "partial load was removed"])


@pytest.mark.neo4j
def test_a_database_error_mid_load_changes_nothing(tmp_path: Path, driver: neo4j.Driver,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = synapse_csv(tmp_path / "syn.csv")
    load_ok(["ingest", str(path), "-d", "t_db_error"])
    real = loader._write_batch
    calls = {"n": 0}

    def failing(*args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise neo4j.exceptions.DatabaseError("the store ran out of space")
        real(*args, **kwargs)

    monkeypatch.setattr(loader, "_write_batch", failing)
    refused_cleanly(driver, ["ingest", str(path), "-d", "t_db_error", "--batch-size", "4"],
                    "t_db_error", ["database failed", "out of space", "rerun the same command"])
    assert calls["n"] == 3


MEASURE = """
import re, sys
from pathlib import Path
from connectome_query.ingest.prepare import prepare
from connectome_query.ingest.sources import open_source
prep = prepare(open_source(sys.argv[1]))
peak = re.search(r"VmHWM:\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1)
print(prep.synapses, int(peak) // 1024)
prep.close()
"""
"""Peak RSS from VmHWM: ru_maxrss of a child starts at its parent's size when it forked."""


def _peak_mb(path: Path) -> tuple[int, int]:
    env = {**os.environ, "CONNECTOME_INGEST_CHUNK_ROWS": "100000",
           "CONNECTOME_INGEST_SPILL_ROWS": "200000"}
    out = subprocess.run([sys.executable, "-c", MEASURE, str(path)], env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    return int(out[0]), int(out[1])


def _big_table(path: Path, n: int) -> Path:
    rng = np.random.default_rng(n)
    bodies = MICRONS + rng.choice(10**9, size=20_000, replace=False)
    pq.write_table(pa.table({
        "id": np.arange(1, n + 1), "pre_pt_root_id": rng.choice(bodies, n),
        "post_pt_root_id": rng.choice(bodies, n),
        "ctr_pt_position_x": rng.random(n), "ctr_pt_position_y": rng.random(n),
        "ctr_pt_position_z": rng.random(n),
        "neuropil": rng.choice(["LH", "MB", "AL", "EB"], n)}), path, row_group_size=200_000)
    return path


@pytest.mark.slow
def test_memory_does_not_grow_with_the_rows(tmp_path: Path) -> None:
    """Checking 3 M synapses (nearly every one its own connection) takes about what checking
    0.5 M does, though the extra rows alone take over 100 MB in memory."""
    small, n_small = _peak_mb(_big_table(tmp_path / "small.parquet", 500_000))
    big, n_big = _peak_mb(_big_table(tmp_path / "big.parquet", 3_000_000))
    assert small > 499_000 and big > 2_999_000  # all but the few autapses drawn
    whole = pq.read_table(tmp_path / "big.parquet").nbytes / 2**20
    print(f"\npeak RSS checking 0.5 M synapses {n_small} MB, 3 M {n_big} MB "
          f"(the 3 M table alone is {whole:.0f} MB in memory)")
    extra = whole * 2.5 / 3
    assert extra > 100
    assert n_big - n_small < min(50, extra / 3)
