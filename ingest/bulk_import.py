"""A fresh database from Neo4j's offline importer (`neo4j-admin database import full`).

The fast path for an empty local server: every row is checked first (`ingest.prepare`), then the
batches become CSV files (written a batch at a time, so memory stays bounded), the stopped
server's database is built from them on disk, the server starts, the migrations build
constraints and indexes, and version 1 of the dataset is published (`graphdb.catalog`). The
graph equals what `ingest.loader` writes (tests compare them).

Node ids for the importer are positions (a neuron's place among the sorted body ids, a synapse's
place in the table), not body ids: `--id-type=INTEGER` takes ids below 2^56 only, and FlyWire and
MICrONS root ids are above it. `bodyId` and `synapseId` are ordinary long properties. A database
that holds data is refused unless `replace=True`, which wipes every dataset in it; should the
importer fail then, the previous store is put back.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import neo4j
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from connectome_query.graphdb import catalog, dataset_scope
from connectome_query.graphdb.local_server import LocalNeo4j, Neo4jServerError
from connectome_query.ingest.batches import (
    connection_batches,
    neuron_batches,
    synapse_batches,
    synapse_set_batches,
    synapse_set_key,
)
from connectome_query.ingest.classify import ChandelierRule
from connectome_query.ingest.loader import LoadReport, as_source, version_meta
from connectome_query.ingest.prepare import Prepared, Progress, prepare
from connectome_query.ingest.tables import NEURON_TEXT, ConnectomeTables, Source
from connectome_query.schema.migrate import apply_migrations
from connectome_query.schema.model import (
    NEURON,
    POST_SYN,
    PRE_SYN,
    SEGMENT,
    SYNAPSE,
    SYNAPSE_SET,
    check_dataset_name,
    scope_label,
    version_key,
)

Step = Callable[[str], None]
"""Called with a short description as each phase starts."""

ARRAY_DELIMITER = "\x1f"
"""Between the elements of an array value (ROI names cannot hold control characters)."""
BATCH = 200_000


def _labels(key: str, plain: tuple[str, ...], scoped: tuple[str, ...]) -> str:
    """A `:LABEL` cell: the plain labels, then version `key`'s own (`dataset_scope`)."""
    return ARRAY_DELIMITER.join((*plain, *(scope_label(key, label) for label in scoped)))


class BulkImportError(RuntimeError):
    """The offline import cannot run or failed."""


@dataclass(frozen=True)
class ImportTimings:
    """Seconds per phase of an offline import."""

    prepare: float
    admin_import: float
    start_and_schema: float
    total: float
    admin_output: str = ""
    """What neo4j-admin printed: its stages, their times and its peak memory."""

    def admin_stages(self) -> dict[str, float]:
        """Seconds of each stage neo4j-admin reports ("Node import", "Relationship import",
        ...), and "IMPORT DONE": the importer's own total, without starting the JVM."""
        found = re.findall(r"^(.+?) COMPLETED in (.+?)\s*$", self.admin_output, re.M)
        done = re.findall(r"^(IMPORT DONE) in (.+?)\.\s*$", self.admin_output, re.M)
        return {name.strip(): _seconds(text) for name, text in found + done}


def _seconds(text: str) -> float:
    """neo4j-admin's durations ("1m 2s 345ms", "9s 439ms", "805ms") in seconds."""
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(n) * scale[u] for n, u in re.findall(r"(\d+)(ms|h|m|s)\b", text))


class _CsvFile:
    """One header file and one data file for the importer, written a batch at a time."""

    def __init__(self, folder: Path, name: str, header: list[str]) -> None:
        self.header_path = folder / f"{name}-header.csv"
        self.data_path = folder / f"{name}.csv"
        self.header_path.write_text(",".join(header) + "\n")
        self._writer: pacsv.CSVWriter | None = None
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self._writer = pacsv.CSVWriter(self.data_path, table.schema, write_options=(
                pacsv.WriteOptions(include_header=False, quoting_style="needed")))
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> str | None:
        """The importer's argument for these files (None when no row was written)."""
        if self._writer is None:
            return None
        self._writer.close()
        return f"{self.header_path},{self.data_path}"


def _const(value: str, n: int) -> pa.Array:
    return pa.array([value] * n, pa.string())


def _text(values: pa.Array) -> pa.Array:
    return pc.cast(values, pa.string())


def _points(x: pa.Array, y: pa.Array, z: pa.Array) -> pa.Array:
    """`{x:1.5,y:2,z:3}` per row (null where any coordinate is)."""
    return pc.binary_join_element_wise("{x:", _text(x), ",y:", _text(y), ",z:", _text(z), "}",
                                       "")


def _joined(values: pa.Array) -> pa.Array:
    """A list column as delimiter-joined text (null for null lists)."""
    return pc.binary_join(pc.cast(values, pa.list_(pa.string())), ARRAY_DELIMITER)


NEURON_PROPS = (*((name, "string") for name in NEURON_TEXT), ("size", "double"),
                ("pre", "long"), ("post", "long"), ("synapseCount", "long"),
                ("upstream", "long"), ("downstream", "long"), ("gapJunctions", "long"),
                ("nmjSynapses", "long"), ("chandelier", "boolean"),
                ("aisOutputFraction", "double"), ("aisOutputSynapses", "long"))


def _neuron_file(folder: Path, prep: Prepared, dataset: str) -> str:
    header = [":ID(N)", "bodyId:long", ":LABEL", "dataset",
              *(f"{name}:{kind}" for name, kind in NEURON_PROPS),
              "somaLocation:point{crs:cartesian-3d}"]
    out = _CsvFile(folder, "neurons", header)
    for batch in neuron_batches(prep, BATCH):
        n = batch.num_rows
        body = batch.column("bodyId")
        labels = _labels(dataset, (SEGMENT, NEURON), (SEGMENT, NEURON))
        cols = [pa.array(prep.body_index(body.to_numpy())), body, _const(labels, n),
                _const(dataset, n), *(batch.column(name) for name, _ in NEURON_PROPS),
                _points(batch.column("somaX"), batch.column("somaY"), batch.column("somaZ"))]
        out.write(pa.table(cols, names=[f"c{i}" for i in range(len(cols))]))
    found = out.close()
    assert found is not None  # prepare() refuses a dataset without neurons
    return found


def _connection_file(folder: Path, prep: Prepared, kind: str, dataset: str) -> str | None:
    header = [":START_ID(N)", ":END_ID(N)", ":TYPE", "weight:long", "dataset"]
    if kind == "chemical":
        header += ["roiInfo:string", "rois:string[]", "roiWeights:long[]",
                   "publishedWeight:double"]
    out = _CsvFile(folder, f"rel-{kind}", header)
    rel = "ConnectsTo" if kind == "chemical" else "GapJunction"
    for batch in connection_batches(prep, kind, BATCH):
        n = batch.num_rows
        cols = [pa.array(prep.body_index(batch.column("bodyIdPre").to_numpy())),
                pa.array(prep.body_index(batch.column("bodyIdPost").to_numpy())),
                _const(rel, n), batch.column("weight"), _const(dataset, n)]
        if kind == "chemical":
            cols += [batch.column("roiInfo"), _joined(batch.column("rois").combine_chunks()),
                     _joined(batch.column("roiWeights").combine_chunks()),
                     batch.column("publishedWeight")]
        out.write(pa.table(cols, names=[f"c{i}" for i in range(len(cols))]))
    return out.close()


def _rel(name: str, a: str, b: str, folder: Path) -> _CsvFile:
    return _CsvFile(folder, name, [f":START_ID({a})", f":END_ID({b})", ":TYPE"])


def _synapse_files(folder: Path, prep: Prepared, dataset: str) -> tuple[list[str], list[str]]:
    """SynapseSet and Synapse nodes and their Contains / SynapsesTo relationships, with
    neuPrint's postsynaptic side as `dataset_scope.add_synapse_sides` writes it online: per set
    (A -> B) B's set (id group PS, version labels only) and per synapse its post node (PSYN)."""
    set_header = [":LABEL", "dataset", "preBodyId:long", "postBodyId:long"]
    sets = _CsvFile(folder, "synapse-sets", [":ID(SS)", *set_header])
    post_sets = _CsvFile(folder, "synapse-sets-post", [":ID(PS)", *set_header])
    owner, target = _rel("rel-neuron-set", "N", "SS", folder), _rel("rel-set-post", "SS", "N",
                                                                     folder)
    post_owner = _rel("rel-neuron-postset", "N", "PS", folder)
    set_sides = _rel("rel-set-postset", "SS", "PS", folder)
    set_labels = _labels(dataset, (SYNAPSE_SET,), (SYNAPSE_SET,))
    post_set_labels = _labels(dataset, (), (SYNAPSE_SET,))
    for batch in synapse_set_batches(prep, BATCH):
        n = batch.num_rows
        ids, pre, post = batch.column("key"), batch.column("bodyIdPre"), batch.column("bodyIdPost")
        post_rows = pa.array(prep.body_index(post.to_numpy()))
        sets.write(pa.table([ids, _const(set_labels, n), _const(dataset, n), pre, post],
                            names=["i", "l", "d", "a", "b"]))
        post_sets.write(pa.table([ids, _const(post_set_labels, n), _const(dataset, n), pre,
                                  post], names=["i", "l", "d", "a", "b"]))
        owner.write(pa.table([pa.array(prep.body_index(pre.to_numpy())), ids,
                              _const("Contains", n)], names=["s", "e", "t"]))
        target.write(pa.table([ids, post_rows, _const("SynapsesTo", n)], names=["s", "e", "t"]))
        post_owner.write(pa.table([post_rows, ids, _const("Contains", n)], names=["s", "e", "t"]))
        set_sides.write(pa.table([ids, ids, _const("ConnectsTo", n)], names=["s", "e", "t"]))
    header = ["synapseId:long", ":LABEL", "dataset", "type", "preBodyId:long",
              "postBodyId:long", "location:point{crs:cartesian-3d}", "postCompartment",
              "size:double", "confidence:double", "roi"]
    synapses = _CsvFile(folder, "synapses", [":ID(SYN)", *header])
    post_synapses = _CsvFile(folder, "synapses-post", [":ID(PSYN)", *header])
    member = _rel("rel-set-synapse", "SS", "SYN", folder)
    post_member = _rel("rel-postset-synapse", "PS", "PSYN", folder)
    sides = _rel("rel-synapse-post", "SYN", "PSYN", folder)
    sides_labels = {"pre": _labels(dataset, (SYNAPSE,), (SYNAPSE, PRE_SYN)),
                    "post": _labels(dataset, (), (SYNAPSE, POST_SYN))}
    first = 0
    for batch in synapse_batches(prep, BATCH):
        n = batch.num_rows
        ids = pa.array(np.arange(first, first + n, dtype=np.int64))
        pre, post = batch.column("bodyIdPre"), batch.column("bodyIdPost")
        values = [batch.column("synapseId"), _const(dataset, n), pre, post,
                  _points(batch.column("x"), batch.column("y"), batch.column("z")),
                  batch.column("postCompartment"), batch.column("size"),
                  batch.column("confidence"), batch.column("roi")]
        for side, out in (("pre", synapses), ("post", post_synapses)):
            out.write(pa.table([ids, values[0], _const(sides_labels[side], n), values[1],
                                _const(side, n), *values[2:]],
                               names=[f"c{i}" for i in range(12)]))
        sets_of = pa.array(synapse_set_key(prep, pre.to_numpy(), post.to_numpy()))
        member.write(pa.table([sets_of, ids, _const("Contains", n)], names=["s", "e", "t"]))
        post_member.write(pa.table([sets_of, ids, _const("Contains", n)],
                                   names=["s", "e", "t"]))
        sides.write(pa.table([ids, ids, _const("SynapsesTo", n)], names=["s", "e", "t"]))
        first += n
    nodes = [f for f in (sets.close(), post_sets.close(), synapses.close(),
                         post_synapses.close()) if f]
    rels = [f for f in (owner.close(), target.close(), post_owner.close(), set_sides.close(),
                        member.close(), post_member.close(), sides.close()) if f]
    return nodes, rels


INDEX_WAIT_S = 4 * 3600
"""How long the import waits for Neo4j to populate its indexes: over 20 M imported synapses
that takes more than the 5 minutes an online load waits, on a busy 2-core machine."""

ID_LIMIT = 2**56
"""`--id-type=INTEGER` takes ids below this."""


def write_import_files(folder: Path, prep: Prepared,
                       dataset: str) -> tuple[list[str], list[str]]:
    """Write the CSV files; return the `--nodes` and `--relationships` arguments.

    Importer ids: a neuron's position among the sorted body ids; a synapse set's key
    (`batches.synapse_set_key`, below the number of bodies squared); a synapse's row."""
    if len(prep.bodies) ** 2 >= ID_LIMIT:
        raise BulkImportError(f"{len(prep.bodies):,} neurons are too many for the offline "
                              "importer's integer ids; use `connectome ingest`")
    folder.mkdir(parents=True, exist_ok=True)
    nodes = [_neuron_file(folder, prep, dataset)]
    rels = [f for f in (_connection_file(folder, prep, "chemical", dataset),
                        _connection_file(folder, prep, "electrical", dataset)) if f]
    if prep.synapses:
        more_nodes, more_rels = _synapse_files(folder, prep, dataset)
        nodes += more_nodes
        rels += more_rels
    return nodes, rels


def database_is_empty(driver: neo4j.Driver, database: str = "neo4j") -> bool:
    """True when the database holds no nodes besides schema-migration records."""
    records, _, _ = driver.execute_query(
        "MATCH (n) WHERE NOT n:SchemaMigration RETURN count(n) > 0 AS any LIMIT 1",
        database_=database)
    return not records[0]["any"]


def _refuse_unless_empty(server: LocalNeo4j, say: Step) -> None:
    store = server.home / "data" / "databases" / "neo4j"
    if server.pid() is None and not store.exists():
        return
    say("checking that the database is empty")
    target = server.start()
    with neo4j.GraphDatabase.driver(target.uri, auth=(target.user, target.password),
                                    notifications_min_severity="OFF") as drv:
        if not database_is_empty(drv):
            raise BulkImportError(
                "the local database already holds data; the offline importer rebuilds it from "
                "scratch. Use `connectome ingest` to add a dataset, or pass --replace to "
                "discard everything in it")


@contextlib.contextmanager
def _store_kept_until_success(server: LocalNeo4j) -> Iterator[None]:
    """Move the stopped server's store aside for the import; put it back if the import fails."""
    data = server.home / "data"
    places = [data / "databases" / "neo4j", data / "transactions" / "neo4j"]
    moved = []
    for place in places:
        if place.exists():
            aside = place.with_name(f"neo4j.before-import-{uuid.uuid4().hex[:8]}")
            place.rename(aside)
            moved.append((place, aside))
    try:
        yield
    except BaseException:
        for place, aside in moved:
            shutil.rmtree(place, ignore_errors=True)
            aside.rename(place)
        raise
    for _, aside in moved:
        shutil.rmtree(aside, ignore_errors=True)


def _admin_import(server: LocalNeo4j, nodes: list[str], rels: list[str], heap: str) -> str:
    args = ["database", "import", "full", "neo4j", "--overwrite-destination=true",
            "--id-type=INTEGER", "--array-delimiter=U+001F",
            "--skip-bad-relationships=false", "--skip-duplicate-nodes=false",
            *(f"--nodes={n}" for n in nodes), *(f"--relationships={r}" for r in rels)]
    with _store_kept_until_success(server):
        proc = server.admin(*args, heap=heap)
        if proc.returncode != 0:
            raise BulkImportError(
                f"neo4j-admin database import failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    return proc.stdout


def offline_import(
    server: LocalNeo4j,
    tables: Source | ConnectomeTables,
    dataset: str,
    *,
    replace: bool = False,
    heap: str = "2g",
    step: Step | None = None,
    chandelier: ChandelierRule | None = None,
    progress: Progress | None = None,
) -> tuple[LoadReport, ImportTimings]:
    """Build the local server's `neo4j` database from `tables` with `neo4j-admin import`.

    Every row is checked before the server is touched. Refuses when the database already holds
    data, unless `replace` (which discards it). The server is stopped for the import and
    running afterwards.
    """
    t0 = time.perf_counter()
    started = datetime.now(UTC)
    check_dataset_name(dataset)
    say = step or (lambda _msg: None)
    say("checking the input")
    source = as_source(tables)
    if source.modulatory is not None:
        raise BulkImportError("neuromodulator edges are written by `connectome ingest`; the "
                              "offline importer does not write them")
    prep = prepare(source, chandelier, progress)
    try:
        return _import(server, prep, dataset, replace, heap, say, t0, started)
    finally:
        prep.close()


def _import(server: LocalNeo4j, prep: Prepared, dataset: str, replace: bool, heap: str,
            say: Step, t0: float, started: datetime) -> tuple[LoadReport, ImportTimings]:
    if not replace:
        _refuse_unless_empty(server, say)
    say("writing import files")
    folder = server.home / "import" / f"bulk-{uuid.uuid4().hex}"
    key = version_key(dataset, 1)  # the database is empty: this is version 1
    try:
        nodes, rels = write_import_files(folder, prep, key)
        t1 = time.perf_counter()
        say("stopping the server")
        server.stop()
        server.fetch()
        server.write_config()
        say("running neo4j-admin database import")
        admin_output = _admin_import(server, nodes, rels, heap)
        t2 = time.perf_counter()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    say("starting the server and building the schema")
    try:
        target = server.start()
    except Neo4jServerError as exc:
        raise BulkImportError(f"the server did not start after the import: {exc}") from None
    with neo4j.GraphDatabase.driver(target.uri, auth=(target.user, target.password),
                                    notifications_min_severity="OFF") as drv:
        try:
            apply_migrations(drv, index_wait_s=INDEX_WAIT_S)
        except neo4j.exceptions.Neo4jError as exc:
            raise BulkImportError(f"building the schema after the import failed ({exc.message}); "
                                  "the imported store has no current dataset version: rerun "
                                  "with --replace") from None
        report = LoadReport(
            dataset=dataset, version=1, neurons=len(prep.bodies),
            chemical_connections=prep.chemical_connections,
            electrical_connections=len(prep.electrical), synapses=prep.synapses,
            chemical_synapses=prep.chemical_synapses, gap_junctions=prep.gap_junctions,
            seconds=0.0)
        version = catalog.begin_version(drv, dataset)
        if version.key != key:
            raise BulkImportError(f"expected the first version of {dataset!r}, the database "
                                  f"already holds {version.key}")
        neuprint = dataset_scope.prepare_version(drv, version.key, imported=True)
        catalog.publish(drv, version, {**version_meta(prep, report), **neuprint})
    t3 = time.perf_counter()
    seconds = (datetime.now(UTC) - started).total_seconds()
    report = LoadReport(**{**report.__dict__, "seconds": seconds})
    return report, ImportTimings(prepare=t1 - t0, admin_import=t2 - t1,
                                 start_and_schema=t3 - t2, total=t3 - t0,
                                 admin_output=admin_output)
