"""`connectome ingest`, `import`, `synth-connectome`, `datasets`: connectomes into the graph."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import Progress, TaskID
from rich.table import Table

from connectome_query.cli.console import console, fail, out, progress_bar
from connectome_query.graphdb.driver import local_server, open_driver
from connectome_query.graphdb.local_server import Neo4jServerError
from connectome_query.graphdb.settings import external_target

app = typer.Typer()


def _fail(message: str, code: int = 1) -> typer.Exit:
    """`fail` for text that may hold brackets (values, positions): shown as written, never read
    as console markup."""
    return fail(escape(message), code)


def _progress(bar: Progress) -> Callable[[str, int, int], None]:
    """A progress callback drawing one bar per step (a counter when the total is unknown)."""
    tasks: dict[str, TaskID] = {}

    def report(step: str, done: int, total: int) -> None:
        if step not in tasks:
            tasks[step] = bar.add_task(step, total=total or None)
        bar.update(tasks[step], completed=done)
    return report


def _database_failed(exc: Exception, dataset: str) -> typer.Exit:
    return _fail(f"the database failed during the load ({type(exc).__name__}: {exc}).\n"
                f"The current version of dataset {dataset!r} is unchanged. What this load wrote "
                "is removed now, or by the next load if the database cannot be reached: rerun "
                "the same command once Neo4j answers (nothing is duplicated).")


def _bad_input(exc: Exception) -> typer.Exit:
    """The message for input ingest refused (IngestError) or a parameter it cannot use."""
    from connectome_query.ingest.errors import IngestError, ParameterError

    if isinstance(exc, ParameterError):
        return _fail(f"invalid value for {exc}", code=2)
    if isinstance(exc, IngestError) and getattr(exc, "after_writes", False):
        return _fail(f"{exc}\nthe partial load was removed; the dataset is as it was")
    if isinstance(exc, IngestError):
        return _fail(f"{exc}\nnothing was written to the database")
    return _fail(str(exc))


def _list_builtins(value: bool) -> None:
    """`--list`: the built-in published datasets, then exit."""
    if not value:
        return
    from connectome_query.ingest.sources import builtin_descriptions

    table = Table("name", "dataset")
    for name, text in builtin_descriptions().items():
        table.add_row(name, text)
    out.print(table)
    raise typer.Exit()


@app.command("ingest")
def ingest_cmd(
    source: Annotated[str, typer.Argument(
        help="a built-in dataset (--list) | a neuPrint CSV folder | a reconstruction run folder "
             "| a CAVE-style synapse table (.csv/.parquet)")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name in the graph.")],
    encoding: Annotated[str, typer.Option(help="Text encoding of CSV input.")] = "utf-8",
    voxel_size: Annotated[str, typer.Option(
        help="nm per voxel (x,y,z) for synapse-table positions.")] = "1,1,1",
    neurons: Annotated[Path | None, typer.Option(
        help="neuPrint-style neurons file giving types for a synapse table.")] = None,
    batch_size: Annotated[int, typer.Option(
        help="Rows per write transaction (1 to 100,000).")] = 10_000,
    chandelier_threshold: Annotated[float, typer.Option(
        help="Chandelier cell: share of output synapses onto AIS at least this.")] = 0.5,
    chandelier_min_synapses: Annotated[int, typer.Option(
        help="Chandelier cell: at least this many outputs of known compartment.")] = 10,
    neuroglancer_source: Annotated[str | None, typer.Option(
        help="Segmentation volume URL (e.g. precomputed://gs://...) for Neuroglancer links.")
    ] = None,
    list_builtins: Annotated[bool, typer.Option(
        "--list", is_eager=True, callback=_list_builtins,
        help="List the built-in published datasets and exit.")] = False,
) -> None:
    """Load a connectome into Neo4j as a new version of the dataset: every row is checked first
    (streamed, in bounded memory), then written; the new version becomes current at the end."""
    from neo4j.exceptions import DriverError, Neo4jError

    from connectome_query.ingest.classify import ChandelierRule
    from connectome_query.ingest.errors import IngestError, ParameterError
    from connectome_query.ingest.loader import check_batch_size, load
    from connectome_query.ingest.readers.synapse_table import parse_voxel_size
    from connectome_query.ingest.sources import open_source
    from connectome_query.schema.model import check_dataset_name

    try:
        check_dataset_name(dataset)
        check_batch_size(batch_size)
        voxels = parse_voxel_size(voxel_size)
        try:
            rule = ChandelierRule(chandelier_threshold, chandelier_min_synapses)
        except ValueError as exc:
            raise ParameterError("--chandelier-threshold/--chandelier-min-synapses",
                                 str(exc)) from None
        data = open_source(source, encoding=encoding, voxel_size=voxels, neurons=neurons)
        if neuroglancer_source:
            data.meta["neuroglancerSource"] = neuroglancer_source
        with open_driver() as driver, progress_bar() as bar:
            result = load(driver, data, dataset, batch_size=batch_size,
                          progress=_progress(bar), chandelier=rule)
    except (IngestError, ParameterError, ValueError) as exc:
        raise _bad_input(exc) from None
    except Neo4jServerError as exc:
        raise _fail(str(exc)) from None
    except (DriverError, Neo4jError) as exc:
        raise _database_failed(exc, dataset) from None
    except OSError as exc:
        raise _fail(f"{exc}\nthe dataset is as it was") from None
    table = Table(title=f"dataset {result.dataset}")
    for name in ("neurons", "chemical_connections", "chemical_synapses",
                 "electrical_connections", "gap_junctions", "synapses"):
        table.add_column(name.replace("_", " "), justify="right")
    table.add_row(*(f"{getattr(result, n):,}" for n in (
        "neurons", "chemical_connections", "chemical_synapses", "electrical_connections",
        "gap_junctions", "synapses")))
    out.print(table)
    out.print(f"loaded version {result.version} in {result.seconds:.1f} s")


@app.command("import")
def import_cmd(
    source: Annotated[str, typer.Argument(help="Anything `connectome ingest` reads.")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name in the graph.")],
    replace: Annotated[bool, typer.Option(
        help="Discard whatever the local database holds (every dataset).")] = False,
    heap: Annotated[str, typer.Option(help="Java heap for neo4j-admin import.")] = "2g",
    encoding: Annotated[str, typer.Option(help="Text encoding of CSV input.")] = "utf-8",
    voxel_size: Annotated[str, typer.Option(
        help="nm per voxel (x,y,z) for synapse-table positions.")] = "1,1,1",
    neurons: Annotated[Path | None, typer.Option(
        help="neuPrint-style neurons file giving types for a synapse table.")] = None,
) -> None:
    """Build an EMPTY local database with neo4j-admin's offline importer (fastest fresh load);
    every row is checked before the server is touched."""
    from connectome_query.ingest.bulk_import import BulkImportError, offline_import
    from connectome_query.ingest.errors import IngestError, ParameterError
    from connectome_query.ingest.readers.synapse_table import parse_voxel_size
    from connectome_query.ingest.sources import open_source
    from connectome_query.schema.model import check_dataset_name

    try:
        check_dataset_name(dataset)
        data = open_source(source, encoding=encoding, voxel_size=parse_voxel_size(voxel_size),
                           neurons=neurons)
        if external_target() is not None:
            raise BulkImportError("the offline importer builds the local server's database; "
                                  "NEO4J_URI names another server: use `connectome ingest` "
                                  "there")
        with console.status("importing...") as status:
            def checking(step: str, done: int, total: int) -> None:
                status.update(f"{step}: {done:,} rows" + (f" of {total:,}" if total else ""))

            report, timings = offline_import(local_server(), data, dataset, replace=replace,
                                             heap=heap, step=lambda m: status.update(m + "..."),
                                             progress=checking)
    except (IngestError, ParameterError, ValueError) as exc:
        raise _bad_input(exc) from None
    except (BulkImportError, Neo4jServerError, OSError) as exc:
        raise _fail(str(exc)) from None
    out.print(f"imported {report.neurons:,} neurons, {report.chemical_connections:,} chemical "
              f"and {report.electrical_connections:,} electrical connections, "
              f"{report.synapses:,} synapses as {dataset} in {timings.total:.1f} s "
              f"(neo4j-admin {timings.admin_import:.1f} s); the server is running")


@app.command("synth-connectome")
def synth_connectome_cmd(
    out_dir: Annotated[Path, typer.Argument(help="Folder for the Parquet files.")],
    neurons: Annotated[int, typer.Option(help="Number of neurons.")],
    edges: Annotated[int, typer.Option(help="Number of (pre, post) connections.")],
    synapses: Annotated[int | None, typer.Option(
        help="Also write synapses.parquet with this many synapses (weights sum to it).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same files).")] = 0,
    types: Annotated[int | None, typer.Option(help="Number of cell types.")] = None,
    id_range: Annotated[str, typer.Option(
        help="Body ids: js (below 2^53), flywire (~7.2e17) or microns (~8.6e17).")] = "js",
) -> None:
    """Write a synthetic FlyWire-like connectome (neuPrint + CAVE-style Parquet) for benchmarks."""
    from connectome_query.ingest.synth_connectome import synth_connectome

    try:
        with console.status("generating..."):
            rep = synth_connectome(out_dir, neurons=neurons, edges=edges, synapses=synapses,
                                   seed=seed, types=types, id_range=id_range)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    out.print(f"wrote {rep.out_dir}: {rep.neurons:,} neurons, {rep.types:,} types, "
              f"{rep.edges:,} connections, {rep.synapses:,} synapses")


@app.command("datasets")
def datasets_cmd(
    versions: Annotated[bool, typer.Option(
        "--versions", help="Every version, not only the current one.")] = False,
) -> None:
    """List the datasets in the graph (each load is a version; the newest complete one is
    current)."""
    from connectome_query.graphdb.catalog import list_versions

    try:
        with open_driver() as driver:
            found = [v for v in list_versions(driver) if versions or v.current]
    except Neo4jServerError as exc:
        raise _fail(str(exc)) from None
    table = Table("dataset", "version", "status", "loaded", "neurons", "chemical synapses",
                  "gap junctions")
    for v in found:
        status = (v.status or "") + (" (current)" if v.current and versions else "")
        table.add_row(v.name, str(v.version), status, (v.created or "")[:19],
                      f"{v.neurons:,}", f"{v.chemical_synapses:,}", f"{v.gap_junctions:,}")
    out.print(table)


@app.command("datasets-delete")
def datasets_delete_cmd(
    name: Annotated[str, typer.Argument(help="The dataset.")],
    version: Annotated[int, typer.Option(help="The version to delete.")],
    current: Annotated[bool, typer.Option(
        "--current", help="Also when it is the current version: the newest other version "
        "becomes current (none left: the dataset is gone).")] = False,
) -> None:
    """Delete one version of a dataset (`connectome datasets --versions` lists them)."""
    from dataclasses import replace

    from connectome_query.graphdb import catalog

    retired, after = False, None
    try:
        with open_driver() as driver:
            found = catalog.resolve(driver, name, version)
            if found.current:
                if not current:
                    raise _fail(f"{name} version {version} is the current version; pass "
                                "--current to delete it (the newest other version then "
                                "becomes current)")
                after = catalog.retire_current(driver, found)
                retired, found = True, replace(found, current=False)
            catalog.delete_version(driver, found)
    except catalog.UnknownDataset as exc:
        raise _fail(str(exc).strip("'\"")) from None
    except Neo4jServerError as exc:
        raise _fail(str(exc)) from None
    out.print(f"deleted {name} version {version}")
    if retired:
        out.print(f"{name} version {after.version} is now current" if after else
                  f"{name} has no version left")


@app.command("skeletons")
def skeletons_cmd(
    folder: Annotated[Path, typer.Argument(help="A folder of <bodyId>.swc files (a run "
                                                "directory's skeletons/, say).")],
    dataset: Annotated[str, typer.Option(help="Dataset whose neurons they belong to.")],
    version: Annotated[int | None, typer.Option(
        help="Version of the dataset (default: the current one).")] = None,
) -> None:
    """Store skeletons on a dataset's neurons (served at /api/skeletons/skeleton/...)."""
    from connectome_query.graphdb.catalog import UnknownDataset
    from connectome_query.ingest.errors import IngestError
    from connectome_query.ingest.skeletons import load_skeletons

    try:
        with open_driver() as driver:
            stored = load_skeletons(driver, dataset, folder, version=version)
    except (IngestError, UnknownDataset) as exc:
        raise _bad_input(exc) from None
    except Neo4jServerError as exc:
        raise fail(str(exc)) from None
    out.print(f"stored {stored} skeletons on {dataset}")


@app.command("datasets-upgrade")
def datasets_upgrade_cmd() -> None:
    """Prepare versions loaded before datasets carried their own labels for the neuPrint
    routes (labels, roiInfo, Meta fields); loading any dataset does the same."""
    from connectome_query.graphdb.dataset_scope import upgrade_versions

    try:
        with open_driver() as driver:
            done = upgrade_versions(driver)
    except Neo4jServerError as exc:
        raise fail(str(exc)) from None
    out.print(f"prepared {len(done)} version(s): {', '.join(done) or 'none needed'}")
