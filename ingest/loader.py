"""Loading `ConnectomeTables` into Neo4j through the official driver, as a new dataset version.

Validation runs first, in memory, so bad input never reaches the database. The rows go into a new
version of the dataset (`graphdb.catalog`), beside the current one, in batched `UNWIND $rows ...
CREATE` statements; only when every batch is in does the new version become current, in one
transaction. Readers see the previous version, whole, until then; a failed load deletes what it
wrote, and one killed outright is swept away by the next load of the same dataset.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import neo4j
import numpy as np
import pandas as pd

from connectome_query.graphdb import catalog
from connectome_query.ingest.classify import ChandelierRule, with_chandelier_classification
from connectome_query.ingest.tables import ConnectomeTables, neuron_summaries, validate
from connectome_query.schema.migrate import apply_migrations
from connectome_query.schema.model import check_dataset_name

Progress = Callable[[str, int, int], None]
"""Called as progress(step, rows_done, rows_total)."""

DEFAULT_BATCH = 10_000

_NEURON_PROPS = ("instance", "type", "cellClass", "neurotransmitter", "status", "size",
                 "pre", "post", "synapseCount", "upstream", "downstream", "gapJunctions",
                 "nmjSynapses",
                 "chandelier", "aisOutputFraction", "aisOutputSynapses")

# Each statement writes one batch into a version nothing else writes to, so CREATE is safe: a
# batch whose transaction is retried was rolled back first.
WRITE_NEURONS = """
UNWIND $rows AS r
CREATE (n:Segment:Neuron {dataset: $dataset, bodyId: r.bodyId})
SET n += r.props,
    n.somaLocation = CASE WHEN r.soma IS NULL THEN null ELSE point(r.soma) END
"""

WRITE_CHEMICAL = """
UNWIND $rows AS r
MATCH (a:Neuron {dataset: $dataset, bodyId: r.pre})
MATCH (b:Neuron {dataset: $dataset, bodyId: r.post})
CREATE (a)-[c:ConnectsTo {weight: r.weight, dataset: $dataset}]->(b)
SET c.roiInfo = r.roiInfo, c.rois = r.rois, c.roiWeights = r.roiWeights
"""

WRITE_ELECTRICAL = """
UNWIND $rows AS r
MATCH (a:Neuron {dataset: $dataset, bodyId: r.pre})
MATCH (b:Neuron {dataset: $dataset, bodyId: r.post})
CREATE (a)-[g:GapJunction {weight: r.weight, dataset: $dataset}]->(b)
"""

WRITE_SYNAPSE_SETS = """
UNWIND $rows AS r
MATCH (a:Neuron {dataset: $dataset, bodyId: r.pre})
MATCH (b:Neuron {dataset: $dataset, bodyId: r.post})
CREATE (a)-[:Contains]->(:SynapseSet {dataset: $dataset, preBodyId: r.pre, postBodyId: r.post})
       -[:SynapsesTo]->(b)
"""

WRITE_SYNAPSES = """
UNWIND $rows AS r
MATCH (ss:SynapseSet {dataset: $dataset, preBodyId: r.pre, postBodyId: r.post})
CREATE (ss)-[:Contains]->(s:Synapse {dataset: $dataset, synapseId: r.synapseId})
SET s.type = 'chemical', s.preBodyId = r.pre, s.postBodyId = r.post,
    s.location = point({x: r.x, y: r.y, z: r.z}), s.size = r.size,
    s.confidence = r.confidence, s.postCompartment = r.postCompartment, s.roi = r.roi
"""


@dataclass(frozen=True)
class LoadReport:
    """What a load wrote."""

    dataset: str
    version: int
    neurons: int
    chemical_connections: int
    electrical_connections: int
    synapses: int
    chemical_synapses: int
    gap_junctions: int
    seconds: float


def _clean(value: Any) -> Any:
    """Python/Bolt-friendly scalars: numpy types unwrapped, NaN and NA become None."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _batches(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def _write_batch(tx: neo4j.ManagedTransaction, query: str, rows: list[dict[str, Any]],
                 dataset: str) -> None:
    tx.run(query, rows=rows, dataset=dataset).consume()


def neuron_rows(tables: ConnectomeTables) -> list[dict[str, Any]]:
    """Neuron rows with summary counts, as the write statement expects them."""
    neurons = tables.neurons.merge(neuron_summaries(tables), on="bodyId", how="left")
    rows = []
    cols = [c for c in _NEURON_PROPS if c in neurons.columns]
    has_soma = {"somaX", "somaY", "somaZ"} <= set(neurons.columns)
    for rec in neurons.to_dict("records"):
        soma = None
        if has_soma:
            x, y, z = (_clean(rec["somaX"]), _clean(rec["somaY"]), _clean(rec["somaZ"]))
            if x is not None and y is not None and z is not None:
                soma = {"x": x, "y": y, "z": z}
        props = {c: _clean(rec[c]) for c in cols}
        rows.append({"bodyId": int(rec["bodyId"]), "props": props, "soma": soma})
    return rows


def connection_rows(conns: pd.DataFrame) -> list[dict[str, Any]]:
    import json

    rows = []
    has_roi = "roiInfo" in conns.columns
    for pre, post, weight, roi in zip(
        conns["bodyIdPre"].to_numpy(), conns["bodyIdPost"].to_numpy(), conns["weight"].to_numpy(),
        conns["roiInfo"].to_numpy() if has_roi else [None] * len(conns), strict=True,
    ):
        row: dict[str, Any] = {"pre": int(pre), "post": int(post), "weight": int(weight),
                               "roiInfo": None, "rois": None, "roiWeights": None}
        if isinstance(roi, str):
            info = json.loads(roi)
            row["roiInfo"] = roi
            row["rois"] = list(info)
            row["roiWeights"] = [int(v.get("post", v.get("pre", 0))) for v in info.values()]
        rows.append(row)
    return rows


def synapse_rows(syn: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for rec in syn.to_dict("records"):
        rows.append({
            "synapseId": int(rec["synapseId"]), "pre": int(rec["bodyIdPre"]),
            "post": int(rec["bodyIdPost"]), "x": float(rec["x"]), "y": float(rec["y"]),
            "z": float(rec["z"]), "size": _clean(rec.get("size")),
            "confidence": _clean(rec.get("confidence")),
            "postCompartment": _clean(rec.get("postCompartment")) or "unknown",
            "roi": _clean(rec.get("roi")),
        })
    return rows


def load(
    driver: neo4j.Driver,
    tables: ConnectomeTables,
    dataset: str,
    *,
    database: str = "neo4j",
    batch_size: int = DEFAULT_BATCH,
    progress: Progress | None = None,
    chandelier: ChandelierRule | None = None,
) -> LoadReport:
    """Validate `tables`, then write them as dataset `dataset`, replacing what it held.

    Neurons are classified as chandelier cells by `chandelier` (default rule: ingest.classify)."""
    start = datetime.now(UTC)
    check_dataset_name(dataset)
    validate(tables)
    tables = with_chandelier_classification(tables, chandelier)
    conns = tables.connections
    chem = conns[conns["kind"] == "chemical"]
    elec = conns[conns["kind"] == "electrical"]
    steps: list[tuple[str, str, list[dict[str, Any]]]] = [
        ("neurons", WRITE_NEURONS, neuron_rows(tables)),
        ("chemical connections", WRITE_CHEMICAL, connection_rows(chem)),
        ("gap junctions", WRITE_ELECTRICAL, connection_rows(elec)),
    ]
    syn = tables.synapses
    if syn is not None and not syn.empty:
        pairs = syn[["bodyIdPre", "bodyIdPost"]].drop_duplicates()
        steps.append(("synapse sets", WRITE_SYNAPSE_SETS,
                      [{"pre": int(a), "post": int(b)} for a, b in pairs.itertuples(index=False)]))
        steps.append(("synapses", WRITE_SYNAPSES, synapse_rows(syn)))

    apply_migrations(driver, database)
    catalog.sweep_abandoned(driver, dataset, database=database)
    version = catalog.begin_version(driver, dataset, database)
    try:
        _write_steps(driver, version, steps, batch_size, progress, database)
    except BaseException:
        _abandon(driver, version, database)
        raise

    seconds = (datetime.now(UTC) - start).total_seconds()
    report = LoadReport(
        dataset=dataset,
        version=version.version,
        neurons=len(tables.neurons),
        chemical_connections=len(chem),
        electrical_connections=len(elec),
        synapses=0 if syn is None else len(syn),
        chemical_synapses=int(chem["weight"].sum()),
        gap_junctions=int(elec["weight"].sum()),
        seconds=seconds,
    )
    try:
        catalog.publish(driver, version, version_meta(tables, report), database)
    except BaseException:
        _abandon(driver, version, database)
        raise
    return report


def version_meta(tables: ConnectomeTables, report: LoadReport) -> dict[str, Any]:
    """The Meta properties of a loaded version: the source's own metadata and the totals."""
    meta = {k: _clean(v) for k, v in tables.meta.items() if not isinstance(v, dict | list)}
    meta.update({k: [_clean(x) for x in v] for k, v in tables.meta.items() if isinstance(v, list)})
    meta.update({"source": tables.source, "neuronCount": report.neurons,
                 "chemicalConnections": report.chemical_connections,
                 "electricalConnections": report.electrical_connections,
                 "chemicalSynapses": report.chemical_synapses,
                 "gapJunctions": report.gap_junctions, "synapseCount": report.synapses})
    return meta


def _write_steps(driver: neo4j.Driver, version: catalog.DatasetVersion,
                 steps: list[tuple[str, str, list[dict[str, Any]]]], batch_size: int,
                 progress: Progress | None, database: str) -> None:
    """Every batch of every step into `version`, one write transaction a batch."""
    with driver.session(database=database) as session:
        for step, query, rows in steps:
            done = 0
            if progress:
                progress(step, 0, len(rows))
            for batch in _batches(rows, batch_size):
                session.execute_write(_write_batch, query, batch, version.key)
                done += len(batch)
                catalog.heartbeat(driver, version, database)
                if progress:
                    progress(step, done, len(rows))


def _abandon(driver: neo4j.Driver, version: catalog.DatasetVersion, database: str) -> None:
    """Delete a version that will not be published; a failure to do so is left to the sweep."""
    with contextlib.suppress(Exception):
        catalog.delete_version(driver, version, database)
