"""Loading a dataset into Neo4j through the official driver, as a new dataset version.

Every row is checked first (`ingest.prepare`: the input is read once, in chunks), so bad input
never reaches the database. Then the input is read again and its rows go into a new version of
the dataset (`graphdb.catalog`), beside the current one, in batched `UNWIND $rows ... CREATE`
statements; only when every batch is in does the new version become current, in one
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
import pyarrow as pa

from connectome_query.graphdb import catalog, dataset_scope, summary
from connectome_query.ingest.batches import (
    connection_batches,
    neuron_batches,
    synapse_batches,
    synapse_set_batches,
)
from connectome_query.ingest.classify import ChandelierRule
from connectome_query.ingest.errors import IngestError, ParameterError
from connectome_query.ingest.limits import BATCH_SIZE_MAX
from connectome_query.ingest.memory import tables_source
from connectome_query.ingest.modulatory import (
    check_modulatory,
    modulatory_meta,
    modulatory_steps,
)
from connectome_query.ingest.prepare import Prepared, Progress, prepare
from connectome_query.ingest.tables import NEURON_TEXT, ConnectomeTables, Source
from connectome_query.schema.migrate import apply_migrations
from connectome_query.schema.model import check_dataset_name

DEFAULT_BATCH = 10_000

_NEURON_PROPS = (*NEURON_TEXT, "size", "pre", "post", "synapseCount", "upstream", "downstream",
                 "gapJunctions", "nmjSynapses", "chandelier", "aisOutputFraction",
                 "aisOutputSynapses")

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
SET c.roiInfo = r.roiInfo, c.rois = r.rois, c.roiWeights = r.roiWeights,
    c.publishedWeight = r.publishedWeight
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
SET s.type = 'pre', s.preBodyId = r.pre, s.postBodyId = r.post,
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
    """Python/Bolt-friendly scalars: numpy types unwrapped, NaN becomes None."""
    if value is None:
        return None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _write_batch(tx: neo4j.ManagedTransaction, query: str, rows: list[dict[str, Any]],
                 dataset: str) -> None:
    tx.run(query, rows=rows, dataset=dataset).consume()


def neuron_rows(table: pa.Table) -> list[dict[str, Any]]:
    """A batch of neurons (`batches.neuron_batches`) as the write statement expects them."""
    rows = []
    for rec in table.to_pylist():
        x, y, z = rec["somaX"], rec["somaY"], rec["somaZ"]
        soma = None if x is None or y is None or z is None else {"x": x, "y": y, "z": z}
        rows.append({"bodyId": rec["bodyId"], "soma": soma,
                     "props": {c: rec[c] for c in _NEURON_PROPS if rec[c] is not None}})
    return rows


_RENAME = {"bodyIdPre": "pre", "bodyIdPost": "post"}


def plain_rows(table: pa.Table) -> list[dict[str, Any]]:
    """A batch of connections, synapse sets or synapses, keyed as the statements expect."""
    return table.rename_columns([_RENAME.get(c, c) for c in table.column_names]).to_pylist()


def set_rows(table: pa.Table) -> list[dict[str, Any]]:
    """A batch of synapse sets (without their key), keyed as the statement expects."""
    return plain_rows(table.select(["bodyIdPre", "bodyIdPost"]))


Step = tuple[str, str, int, Iterator[pa.Table], Callable[[pa.Table], list[dict[str, Any]]]]


def _steps(prep: Prepared, batch_size: int) -> list[Step]:
    steps: list[Step] = [
        ("neurons", WRITE_NEURONS, len(prep.bodies), neuron_batches(prep, batch_size),
         neuron_rows),
        ("chemical connections", WRITE_CHEMICAL, prep.chemical_connections,
         connection_batches(prep, "chemical", batch_size), plain_rows),
        ("gap junctions", WRITE_ELECTRICAL, len(prep.electrical),
         connection_batches(prep, "electrical", batch_size), plain_rows),
    ]
    if prep.synapses:
        steps += [
            ("synapse sets", WRITE_SYNAPSE_SETS, prep.pairs.connections,
             synapse_set_batches(prep, batch_size), set_rows),
            ("synapses", WRITE_SYNAPSES, prep.synapses, synapse_batches(prep, batch_size),
             plain_rows),
        ]
    return steps


def check_batch_size(batch_size: int) -> int:
    """`batch_size` if it is a whole number from 1 to `BATCH_SIZE_MAX`; ParameterError
    otherwise."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or \
            not 1 <= batch_size <= BATCH_SIZE_MAX:
        raise ParameterError("--batch-size", f"expected a whole number from 1 to "
                             f"{BATCH_SIZE_MAX:,} (rows per write transaction), got "
                             f"{batch_size!r}")
    return batch_size


def as_source(data: Source | ConnectomeTables) -> Source:
    """A source for either form of a dataset."""
    return tables_source(data) if isinstance(data, ConnectomeTables) else data


def load(
    driver: neo4j.Driver,
    tables: Source | ConnectomeTables,
    dataset: str,
    *,
    database: str = "neo4j",
    batch_size: int = DEFAULT_BATCH,
    progress: Progress | None = None,
    chandelier: ChandelierRule | None = None,
) -> LoadReport:
    """Check every row of `tables`, then write them as a new version of dataset `dataset` and
    make it current.

    Neurons are classified as chandelier cells by `chandelier` (default rule: ingest.classify).
    Raises IngestError or ParameterError, before anything is written, for bad input."""
    start = datetime.now(UTC)
    check_dataset_name(dataset)
    check_batch_size(batch_size)
    source = as_source(tables)
    prep = prepare(source, chandelier, progress)
    try:
        modulatory = check_modulatory(source.modulatory, prep.bodies,
                                      f"{source.name} (modulatory)")
        prep.meta.update(modulatory_meta(modulatory))
        apply_migrations(driver, database)
        dataset_scope.upgrade_versions(driver, database)
        summary.keep_missing(driver, database)
        catalog.sweep_abandoned(driver, dataset, database=database)
        version = catalog.begin_version(driver, dataset, database)
        try:
            _write_steps(driver, version,
                         _steps(prep, batch_size) + modulatory_steps(modulatory, batch_size),
                         progress, database)
            report = LoadReport(
                dataset=dataset, version=version.version, neurons=len(prep.bodies),
                chemical_connections=prep.chemical_connections,
                electrical_connections=len(prep.electrical), synapses=prep.synapses,
                chemical_synapses=prep.chemical_synapses, gap_junctions=prep.gap_junctions,
                seconds=(datetime.now(UTC) - start).total_seconds())
            neuprint = dataset_scope.prepare_version(driver, version.key, database)
            catalog.publish(driver, version, {**version_meta(prep, report), **neuprint},
                            database)
        except BaseException as exc:
            _abandon(driver, version, database)
            if isinstance(exc, IngestError):
                exc.after_writes = True
            raise
    finally:
        prep.close()
    return report


def version_meta(prep: Prepared, report: LoadReport) -> dict[str, Any]:
    """The Meta properties of a loaded version: the source's own metadata and the totals."""
    meta = {k: _clean(v) for k, v in prep.meta.items() if not isinstance(v, dict | list)}
    meta.update({k: [_clean(x) for x in v] for k, v in prep.meta.items() if isinstance(v, list)})
    meta.update({"source": prep.source.name, "neuronCount": report.neurons,
                 "chemicalConnections": report.chemical_connections,
                 "electricalConnections": report.electrical_connections,
                 "chemicalSynapses": report.chemical_synapses,
                 "gapJunctions": report.gap_junctions, "synapseCount": report.synapses})
    return meta


def _write_steps(driver: neo4j.Driver, version: catalog.DatasetVersion, steps: list[Step],
                 progress: Progress | None, database: str) -> None:
    """Every batch of every step into `version`, one write transaction a batch."""
    with driver.session(database=database) as session:
        for step, query, total, batches, to_rows in steps:
            done = 0
            if progress:
                progress(step, 0, total)
            for batch in batches:
                session.execute_write(_write_batch, query, to_rows(batch), version.key)
                done += batch.num_rows
                catalog.heartbeat(driver, version, database)
                if progress:
                    progress(step, done, total)


def _abandon(driver: neo4j.Driver, version: catalog.DatasetVersion, database: str) -> None:
    """Delete a version that will not be published; a failure to do so is left to the sweep."""
    with contextlib.suppress(Exception):
        catalog.delete_version(driver, version, database)
