"""A fresh database from Neo4j's offline importer (`neo4j-admin database import full`).

The fast path for an empty local server: tables become CSV files, the stopped server's database
is built from them on disk, then the server starts, the migrations build constraints and indexes,
and the Meta node is written. The graph equals what `ingest.loader` writes (tests compare them).
A database that holds data is refused unless `replace=True`, which wipes every dataset in it.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import neo4j
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from connectome_query.graphdb import catalog
from connectome_query.graphdb.local_server import LocalNeo4j, Neo4jServerError
from connectome_query.ingest.classify import ChandelierRule, with_chandelier_classification
from connectome_query.ingest.loader import LoadReport, _clean, neuron_rows, version_meta
from connectome_query.ingest.tables import ConnectomeTables, validate
from connectome_query.schema.migrate import apply_migrations
from connectome_query.schema.model import check_dataset_name, version_key

Step = Callable[[str], None]
"""Called with a short description as each phase starts."""

ARRAY_DELIMITER = ";"


class BulkImportError(RuntimeError):
    """The offline import cannot run or failed."""


@dataclass(frozen=True)
class ImportTimings:
    """Seconds per phase of an offline import."""

    prepare: float
    admin_import: float
    start_and_schema: float
    total: float


def _prepare(tables: ConnectomeTables, rule: ChandelierRule | None) -> ConnectomeTables:
    """The same neuron-level derivations the loader applies before writing."""
    return with_chandelier_classification(tables, rule)


def _csv_type(values: list[Any]) -> str | None:
    """The importer's type for a property column, from its first non-null Python value."""
    for v in values:
        if v is None:
            continue
        if isinstance(v, bool):
            return "boolean"
        if isinstance(v, int):
            return "long"
        if isinstance(v, float):
            return "double"
        if isinstance(v, str):
            return "string"
        raise BulkImportError(f"cannot import a property value of type {type(v).__name__}")
    return None


def _write(folder: Path, name: str, header: list[str], table: pa.Table) -> str:
    """Write `name`-header.csv and `name`.csv; return the importer's file-list argument."""
    (folder / f"{name}-header.csv").write_text(",".join(header) + "\n")
    pacsv.write_csv(table, folder / f"{name}.csv",
                    pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    return f"{folder / f'{name}-header.csv'},{folder / f'{name}.csv'}"


def _point_text(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> pa.Array:
    ok = ~(np.isnan(x) | np.isnan(y) | np.isnan(z))
    text = [f"{{x:{a!r},y:{b!r},z:{c!r}}}" if k else None
            for a, b, c, k in zip(x.tolist(), y.tolist(), z.tolist(), ok.tolist(), strict=True)]
    return pa.array(text, pa.string())


def _neuron_file(folder: Path, tables: ConnectomeTables, dataset: str) -> str:
    rows = neuron_rows(tables)
    header = ["bodyId:ID(N)", ":LABEL", "dataset"]
    cols: dict[str, pa.Array] = {
        "bodyId": pa.array([r["bodyId"] for r in rows], pa.int64()),
        "label": pa.array(["Segment;Neuron"] * len(rows)),
        "dataset": pa.array([dataset] * len(rows)),
    }
    keys = list(rows[0]["props"]) if rows else []
    for key in keys:
        values = [r["props"].get(key) for r in rows]
        kind = _csv_type(values)
        if kind is None:
            continue  # all null: the loader sets no property either
        header.append(f"{key}:{kind}")
        cols[key] = pa.array(values)
    soma = [r["soma"] for r in rows]
    if any(s is not None for s in soma):
        header.append("somaLocation:point{crs:cartesian-3d}")
        cols["soma"] = pa.array([None if s is None else
                                 f"{{x:{s['x']!r},y:{s['y']!r},z:{s['z']!r}}}" for s in soma],
                                pa.string())
    return _write(folder, "neurons", header, pa.table(cols))


def _roi_columns(roi_info: pd.Series) -> tuple[list[str | None], list[str | None]]:
    """`rois` and `roiWeights` as the loader derives them, joined for the importer."""
    rois: list[str | None] = []
    weights: list[str | None] = []
    for value in roi_info.tolist():
        if not isinstance(value, str):
            rois.append(None)
            weights.append(None)
            continue
        info = json.loads(value)
        names = list(info)
        if any(ARRAY_DELIMITER in n for n in names):
            raise BulkImportError(f"ROI name with {ARRAY_DELIMITER!r} cannot be imported "
                                  "offline; use the online loader")
        rois.append(ARRAY_DELIMITER.join(names) if names else None)
        weights.append(ARRAY_DELIMITER.join(str(int(v.get("post", v.get("pre", 0))))
                                            for v in info.values()) if names else None)
    return rois, weights


def _connection_file(folder: Path, conns: pd.DataFrame, kind: str, dataset: str) -> str | None:
    if conns.empty:
        return None
    n = len(conns)
    header = [":START_ID(N)", ":END_ID(N)", ":TYPE", "weight:long", "dataset"]
    cols: dict[str, pa.Array] = {
        "a": pa.array(conns["bodyIdPre"].to_numpy(np.int64)),
        "b": pa.array(conns["bodyIdPost"].to_numpy(np.int64)),
        "t": pa.array(["ConnectsTo" if kind == "chemical" else "GapJunction"] * n),
        "w": pa.array(conns["weight"].to_numpy(np.int64)),
        "d": pa.array([dataset] * n),
    }
    if kind == "chemical" and "roiInfo" in conns.columns:
        info = conns["roiInfo"]
        rois, weights = _roi_columns(info)
        header += ["roiInfo:string", "rois:string[]", "roiWeights:long[]"]
        cols["ri"] = pa.array([v if isinstance(v, str) else None for v in info.tolist()],
                              pa.string())
        cols["r"] = pa.array(rois, pa.string())
        cols["rw"] = pa.array(weights, pa.string())
    return _write(folder, f"rel-{kind}", header, pa.table(cols))


def _synapse_files(folder: Path, syn: pd.DataFrame, dataset: str) -> tuple[list[str], list[str]]:
    """SynapseSet and Synapse nodes and their Contains / SynapsesTo relationships."""
    n = len(syn)
    pre = syn["bodyIdPre"].to_numpy(np.int64)
    post = syn["bodyIdPost"].to_numpy(np.int64)
    pairs = pd.DataFrame({"pre": pre, "post": post})
    set_id = pairs.groupby(["pre", "post"], sort=True).ngroup().to_numpy(np.int64)
    sets = pairs.drop_duplicates().sort_values(["pre", "post"]).reset_index(drop=True)
    ns = len(sets)
    nodes = [
        _write(folder, "synapse-sets", [":ID(SS)", ":LABEL", "dataset", "preBodyId:long",
                                        "postBodyId:long"],
               pa.table({"i": pa.array(np.arange(ns, dtype=np.int64)),
                         "lb": pa.array(["SynapseSet"] * ns), "d": pa.array([dataset] * ns),
                         "a": pa.array(sets["pre"].to_numpy()),
                         "b": pa.array(sets["post"].to_numpy()),
                         })),
    ]

    def opt(col: str, kind: str) -> tuple[str, pa.Array] | None:
        if col not in syn.columns:
            return None
        values = [_clean(v) for v in syn[col].tolist()]
        return (f"{col}:{kind}", pa.array(values)) if _csv_type(values) else None

    header = ["synapseId:ID(SYN)", ":LABEL", "dataset", "type", "preBodyId:long",
              "postBodyId:long", "location:point{crs:cartesian-3d}", "postCompartment"]
    comp = syn["postCompartment"] if "postCompartment" in syn.columns else pd.Series(
        [None] * n)
    cols: dict[str, pa.Array] = {
        "i": pa.array(syn["synapseId"].to_numpy(np.int64)),
        "lb": pa.array(["Synapse"] * n), "d": pa.array([dataset] * n),
        "t": pa.array(["chemical"] * n), "a": pa.array(pre), "b": pa.array(post),
        "p": _point_text(syn["x"].to_numpy(np.float64), syn["y"].to_numpy(np.float64),
                         syn["z"].to_numpy(np.float64)),
        "c": pa.array([_clean(v) or "unknown" for v in comp.tolist()], pa.string()),
    }
    for col, kind in (("size", "double"), ("confidence", "double"), ("roi", "string")):
        got = opt(col, kind)
        if got:
            header.append(got[0])
            cols[col] = got[1]
    nodes.append(_write(folder, "synapses", header, pa.table(cols)))
    rel_header = [":START_ID({a})", ":END_ID({b})", ":TYPE"]

    def rels(name: str, a: str, b: str, start: np.ndarray, end: np.ndarray, kind: str) -> str:
        m = len(start)
        return _write(folder, name, [h.format(a=a, b=b) for h in rel_header],
                      pa.table({"s": pa.array(start), "e": pa.array(end),
                                "t": pa.array([kind] * m)}))

    set_ids = np.arange(ns, dtype=np.int64)
    rel_files = [
        rels("rel-neuron-set", "N", "SS", sets["pre"].to_numpy(), set_ids, "Contains"),
        rels("rel-set-post", "SS", "N", set_ids, sets["post"].to_numpy(), "SynapsesTo"),
        rels("rel-set-synapse", "SS", "SYN", set_id, syn["synapseId"].to_numpy(np.int64),
             "Contains"),
    ]
    return nodes, rel_files


def write_import_files(folder: Path, tables: ConnectomeTables,
                       dataset: str) -> tuple[list[str], list[str]]:
    """Write the CSV files; return the `--nodes` and `--relationships` arguments."""
    folder.mkdir(parents=True, exist_ok=True)
    conns = tables.connections
    nodes = [_neuron_file(folder, tables, dataset)]
    rels = [f for f in (
        _connection_file(folder, conns[conns["kind"] == "chemical"], "chemical", dataset),
        _connection_file(folder, conns[conns["kind"] == "electrical"], "electrical", dataset),
    ) if f]
    syn = tables.synapses
    if syn is not None and not syn.empty:
        more_nodes, more_rels = _synapse_files(folder, syn, dataset)
        nodes += more_nodes
        rels += more_rels
    return nodes, rels


def database_is_empty(driver: neo4j.Driver, database: str = "neo4j") -> bool:
    """True when the database holds no nodes besides schema-migration records."""
    records, _, _ = driver.execute_query(
        "MATCH (n) WHERE NOT n:SchemaMigration RETURN count(n) > 0 AS any LIMIT 1",
        database_=database)
    return not records[0]["any"]


def offline_import(
    server: LocalNeo4j,
    tables: ConnectomeTables,
    dataset: str,
    *,
    replace: bool = False,
    heap: str = "2g",
    step: Step | None = None,
    chandelier: ChandelierRule | None = None,
) -> tuple[LoadReport, ImportTimings]:
    """Build the local server's `neo4j` database from `tables` with `neo4j-admin import`.

    Refuses when the database already holds data, unless `replace` (which discards it). The
    server is stopped for the import and running afterwards.
    """
    t0 = time.perf_counter()
    started = datetime.now(UTC)
    check_dataset_name(dataset)
    validate(tables)
    say = step or (lambda _msg: None)
    if not replace:
        store = server.home / "data" / "databases" / "neo4j"
        if server.pid() is not None or store.exists():
            say("checking that the database is empty")
            target = server.start()
            with neo4j.GraphDatabase.driver(target.uri, auth=(target.user, target.password),
                                            notifications_min_severity="OFF") as drv:
                if not database_is_empty(drv):
                    raise BulkImportError(
                        "the local database already holds data; the offline importer rebuilds "
                        "it from scratch. Use `connectome ingest` to add a dataset, or pass "
                        "--replace to discard everything in it")
    say("writing import files")
    prepared = _prepare(tables, chandelier)
    folder = server.home / "import" / f"bulk-{uuid.uuid4().hex}"
    key = version_key(dataset, 1)  # the database is empty: this is version 1
    try:
        nodes, rels = write_import_files(folder, prepared, key)
        t1 = time.perf_counter()
        say("stopping the server")
        server.stop()
        server.fetch()
        server.write_config()
        say("running neo4j-admin database import")
        args = ["database", "import", "full", "neo4j", "--overwrite-destination=true",
                "--id-type=INTEGER", f"--array-delimiter={ARRAY_DELIMITER}",
                "--skip-bad-relationships=false", "--skip-duplicate-nodes=false",
                *(f"--nodes={n}" for n in nodes), *(f"--relationships={r}" for r in rels)]
        proc = server.admin(*args, heap=heap)
        if proc.returncode != 0:
            raise BulkImportError(
                f"neo4j-admin database import failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
        t2 = time.perf_counter()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    say("starting the server and building the schema")
    try:
        target = server.start()
    except Neo4jServerError as exc:
        raise BulkImportError(f"the server did not start after the import: {exc}") from None
    conns = prepared.connections
    chem = conns[conns["kind"] == "chemical"]
    elec = conns[conns["kind"] == "electrical"]
    syn = prepared.synapses
    with neo4j.GraphDatabase.driver(target.uri, auth=(target.user, target.password),
                                    notifications_min_severity="OFF") as drv:
        apply_migrations(drv)
        report = LoadReport(
            dataset=dataset, version=1, neurons=len(prepared.neurons),
            chemical_connections=len(chem),
            electrical_connections=len(elec), synapses=0 if syn is None else len(syn),
            chemical_synapses=int(chem["weight"].sum()), gap_junctions=int(elec["weight"].sum()),
            seconds=0.0,
        )
        version = catalog.begin_version(drv, dataset)
        if version.key != key:
            raise BulkImportError(f"expected the first version of {dataset!r}, the database "
                                  f"already holds {version.key}")
        catalog.publish(drv, version, version_meta(prepared, report))
    t3 = time.perf_counter()
    seconds = (datetime.now(UTC) - started).total_seconds()
    report = LoadReport(**{**report.__dict__, "seconds": seconds})
    return report, ImportTimings(prepare=t1 - t0, admin_import=t2 - t1,
                                 start_and_schema=t3 - t2, total=t3 - t0)
