"""The `connectome` command: one entry point, a subcommand per job."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

import connectome.bloom_cli
import reconstruct.cli
from connectome.db import local_server, open_driver, resolve_target
from connectome.export_cli import export_app
from connectome.neo4j_local import Neo4jServerError
from connectome.settings import cache_dir, external_target
from connectome.tokens_cli import tokens_app

app = typer.Typer(
    help="connectome-query: EM reconstruction to a Neo4j connectome with GraphQL circuit queries.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
neo4j_app = typer.Typer(help="The local Neo4j 5.26 server (or the one NEO4J_URI names).",
                        no_args_is_help=True)
app.add_typer(neo4j_app, name="neo4j")
app.add_typer(export_app, name="export")
app.add_typer(tokens_app, name="tokens")
console = Console(stderr=True)
out = Console()


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print an error in red and return the Exit to raise."""
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def progress_bar() -> Iterator[Progress]:
    with Progress(
        TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console, transient=False,
    ) as bar:
        yield bar


# -- neo4j ---------------------------------------------------------------------------------------
@neo4j_app.command("start")
def neo4j_start(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the server.")] = 180.0,
) -> None:
    """Fetch Neo4j 5.26 + APOC with mvn (once), start it on 127.0.0.1, wait until it answers."""
    if external_target() is not None:
        console.print("NEO4J_URI is set: using that server, not starting a local one.")
        return
    server = local_server()
    try:
        with console.status("starting Neo4j (the first start fetches its jars with mvn)..."):
            target = server.start(timeout=timeout)
    except Neo4jServerError as exc:
        raise fail(str(exc)) from None
    out.print(f"Neo4j is running at {target.uri} (home {server.home})")


@neo4j_app.command("stop")
def neo4j_stop() -> None:
    """Shut the local server down cleanly."""
    server = local_server()
    stopped = server.stop()
    out.print("Neo4j stopped." if stopped else "Neo4j was not running.")


@neo4j_app.command("status")
def neo4j_status() -> None:
    """Say whether the server runs, where, and which version."""
    external = external_target()
    if external is not None:
        try:
            with open_driver(external) as driver:
                driver.verify_connectivity()
            out.print(f"using NEO4J_URI {external.uri}: reachable")
        except Exception as exc:
            raise fail(f"NEO4J_URI {external.uri} is not reachable: {exc}") from None
        return
    st = local_server().status()
    state = f"running (pid {st.pid})" if st.running else "stopped"
    out.print(f"Neo4j {st.version} local server: {state}\n  uri:  {st.uri}\n  home: {st.home}")
    if not st.running:
        raise typer.Exit(3)


@neo4j_app.command("logs")
def neo4j_logs(
    lines: Annotated[int, typer.Option("-n", help="How many lines.")] = 60,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing.")] = False,
) -> None:
    """Print the end of the server's console log."""
    server = local_server()
    out.print(server.log_tail(lines), highlight=False, markup=False)
    if follow:
        with server.console_log.open() as fh:
            fh.seek(0, 2)
            while True:
                line = fh.readline()
                if line:
                    sys.stdout.write(line)
                    sys.stdout.flush()
                else:
                    time.sleep(0.5)


@neo4j_app.command("dump")
def neo4j_dump(
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="Dump file, or a folder to hold neo4j.dump.")] = Path("neo4j.dump"),
) -> None:
    """Dump the local database for Neo4j Desktop 5.26 (stops the server, restarts it)."""
    from connectome.neo4j_local import dump_database

    if external_target() is not None:
        raise fail("NEO4J_URI names another server; dump it there with `neo4j-admin database "
                   "dump`, or unset NEO4J_URI to dump the local server")
    try:
        with console.status("dumping (the server is stopped meanwhile)..."):
            path = dump_database(local_server(), output)
    except Neo4jServerError as exc:
        raise fail(str(exc)) from None
    out.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


@neo4j_app.command("load")
def neo4j_load(
    dump: Annotated[Path, typer.Argument(help="A dump file (from `connectome neo4j dump`).")],
) -> None:
    """Replace the local database with a dump (stops the server, restarts it if it ran)."""
    from connectome.neo4j_local import load_database

    if external_target() is not None:
        raise fail("NEO4J_URI names another server; load dumps there with `neo4j-admin database "
                   "load`, or unset NEO4J_URI to load into the local server")
    try:
        with console.status(f"loading {dump}..."):
            restarted = load_database(local_server(), dump)
    except Neo4jServerError as exc:
        raise fail(str(exc)) from None
    out.print(f"loaded {dump}" + ("" if restarted else "; start it with `connectome neo4j start`"))


# -- ingest --------------------------------------------------------------------------------------
def _voxel_size(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or min(parts) <= 0:
        raise typer.BadParameter("expected three positive numbers, e.g. 4,4,40")
    return (parts[0], parts[1], parts[2])


@app.command("ingest")
def ingest_cmd(
    source: Annotated[str, typer.Argument(
        help="cook2019 | varshney2011 | a neuPrint CSV folder | a reconstruction run folder "
             "| a CAVE-style synapse table (.csv/.parquet)")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name in the graph.")],
    encoding: Annotated[str, typer.Option(help="Text encoding of CSV input.")] = "utf-8",
    voxel_size: Annotated[str, typer.Option(
        help="nm per voxel (x,y,z) for synapse-table positions.")] = "1,1,1",
    neurons: Annotated[Path | None, typer.Option(
        help="neuPrint-style neurons file giving types for a synapse table.")] = None,
    batch_size: Annotated[int, typer.Option(help="Rows per write transaction.")] = 10_000,
    chandelier_threshold: Annotated[float, typer.Option(
        help="Chandelier cell: share of output synapses onto AIS at least this.")] = 0.5,
    chandelier_min_synapses: Annotated[int, typer.Option(
        help="Chandelier cell: at least this many outputs of known compartment.")] = 10,
    neuroglancer_source: Annotated[str | None, typer.Option(
        help="Segmentation volume URL (e.g. precomputed://gs://...) for Neuroglancer links.")
    ] = None,
) -> None:
    """Load a connectome into Neo4j (validated first; re-running gives the same graph)."""
    from neo4j.exceptions import DriverError, Neo4jError

    from ingest.classify import ChandelierRule
    from ingest.errors import IngestError
    from ingest.loader import load
    from ingest.sources import read_source

    try:
        rule = ChandelierRule(chandelier_threshold, chandelier_min_synapses)
        with console.status(f"reading {source}..."):
            tables = read_source(source, encoding=encoding, voxel_size=_voxel_size(voxel_size),
                                 neurons=neurons)
        if neuroglancer_source:
            tables.meta["neuroglancerSource"] = neuroglancer_source
        with open_driver() as driver, progress_bar() as bar:
            tasks: dict[str, TaskID] = {}

            def report(step: str, done: int, total: int) -> None:
                if step not in tasks:
                    tasks[step] = bar.add_task(step, total=max(total, 1))
                bar.update(tasks[step], completed=done if total else 1)

            result = load(driver, tables, dataset, batch_size=batch_size, progress=report,
                          chandelier=rule)
    except IngestError as exc:
        raise fail(f"{exc}\nnothing was written to the database") from None
    except ValueError as exc:
        raise fail(str(exc)) from None
    except Neo4jServerError as exc:
        raise fail(str(exc)) from None
    except (DriverError, Neo4jError) as exc:
        raise fail(f"the database failed during the load ({type(exc).__name__}: {exc}).\n"
                   f"If writing had begun, dataset {dataset!r} stays marked status='loading'; "
                   "rerun the same command once Neo4j answers: the rerun replaces the partial "
                   "load (nothing is duplicated).") from None
    table = Table(title=f"dataset {result.dataset}")
    for name in ("neurons", "chemical_connections", "chemical_synapses",
                 "electrical_connections", "gap_junctions", "synapses"):
        table.add_column(name.replace("_", " "), justify="right")
    table.add_row(*(f"{getattr(result, n):,}" for n in (
        "neurons", "chemical_connections", "chemical_synapses", "electrical_connections",
        "gap_junctions", "synapses")))
    out.print(table)
    out.print(f"loaded in {result.seconds:.1f} s")


@app.command("import")
def import_cmd(
    source: Annotated[str, typer.Argument(help="Anything `connectome ingest` reads.")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name in the graph.")],
    replace: Annotated[bool, typer.Option(
        help="Discard whatever the local database holds (every dataset).")] = False,
    heap: Annotated[str, typer.Option(help="Java heap for neo4j-admin import.")] = "2g",
    voxel_size: Annotated[str, typer.Option(
        help="nm per voxel (x,y,z) for synapse-table positions.")] = "1,1,1",
    neurons: Annotated[Path | None, typer.Option(
        help="neuPrint-style neurons file giving types for a synapse table.")] = None,
) -> None:
    """Build an EMPTY local database with neo4j-admin's offline importer (fastest fresh load)."""
    from ingest.bulk_import import BulkImportError, offline_import
    from ingest.errors import IngestError
    from ingest.sources import read_source

    if external_target() is not None:
        raise fail("the offline importer builds the local server's database; NEO4J_URI names "
                   "another server: use `connectome ingest` there")
    try:
        with console.status(f"reading {source}..."):
            tables = read_source(source, voxel_size=_voxel_size(voxel_size), neurons=neurons)
        with console.status("importing...") as status:
            report, timings = offline_import(local_server(), tables, dataset, replace=replace,
                                             heap=heap, step=lambda m: status.update(m + "..."))
    except IngestError as exc:
        raise fail(f"{exc}\nnothing was written to the database") from None
    except (BulkImportError, Neo4jServerError, ValueError) as exc:
        raise fail(str(exc)) from None
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
) -> None:
    """Write a synthetic FlyWire-like connectome (neuPrint + CAVE-style Parquet) for benchmarks."""
    from ingest.synth_connectome import synth_connectome

    try:
        with console.status("generating..."):
            rep = synth_connectome(out_dir, neurons=neurons, edges=edges, synapses=synapses,
                                   seed=seed, types=types)
    except ValueError as exc:
        raise fail(str(exc)) from None
    out.print(f"wrote {rep.out_dir}: {rep.neurons:,} neurons, {rep.types:,} types, "
              f"{rep.edges:,} connections, {rep.synapses:,} synapses")


@app.command("datasets")
def datasets_cmd() -> None:
    """List the datasets in the graph."""
    try:
        with open_driver() as driver:
            records, _, _ = driver.execute_query(
                "MATCH (m:Meta) RETURN m.dataset AS dataset, m.status AS status, "
                "m.neuronCount AS neurons, m.chemicalSynapses AS chem, m.gapJunctions AS gap "
                "ORDER BY dataset")
    except Neo4jServerError as exc:
        raise fail(str(exc)) from None
    table = Table("dataset", "status", "neurons", "chemical synapses", "gap junctions")
    for r in records:
        table.add_row(r["dataset"], r["status"], *(f"{r[k] or 0:,}" for k in ("neurons", "chem",
                                                                                "gap")))
    out.print(table)


# -- API -----------------------------------------------------------------------------------------
@app.command("serve")
def serve_cmd(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve the GraphQL API (GraphiQL at /graphql) on FastAPI."""
    import uvicorn

    from graphql_api.app import create_app

    try:
        resolve_target()
    except Neo4jServerError as exc:
        raise fail(str(exc)) from None
    uvicorn.run(create_app(), host=host, port=port, log_level="info")


@app.command("export-sdl")
def export_sdl_cmd(
    path: Annotated[Path, typer.Argument(help="Where to write the SDL.")] = Path(
        "schema/schema.graphql"),
) -> None:
    """Write the GraphQL schema (SDL) that the API serves."""
    from graphql_api.schema import export_sdl

    path.write_text(export_sdl())
    out.print(f"wrote {path}")


SAMPLE_QUERY = """{
  neuron(dataset: "cook2019", name: "AVAL") {
    instance type cellClass pre post
    upstream(minWeight: 20, first: 5) { weight partner { instance type } }
  }
}"""


EM_DEMO_DATASET = "synthetic-em"
EM_SAMPLE_QUERY = """{
  multiSynapticContacts(dataset: "synthetic-em", minSynapses: 1, first: 5) {
    contacts { pre { bodyId cellClass } post { bodyId cellClass } synapseCount
               synapses { compartment confidence } }
  }
}"""


def _demo_em(work: Path) -> None:
    """Synthesize a small EM volume with truth, reconstruct it, load the run directory."""
    from reconstruct import pipeline, synth
    from reconstruct.cli import metrics_table

    em_dir, run_dir = work / "em", work / "run"
    cfg = synth.SynthConfig((64, 64, 64), (40.0, 16.0, 16.0), "clean", seed=1)
    console.print(f"[bold]synthesize an EM volume[/] (64^3 voxels, 16x16x40 nm) in {em_dir}")
    with pipeline.rich_progress() as tick:
        pipeline.synthesize(em_dir, cfg, tick)
    console.print(f"[bold]reconstruct it[/] into {run_dir}")
    with pipeline.rich_progress() as tick:
        result = pipeline.reconstruct(em_dir, run_dir, tick=tick)
    console.print(metrics_table(result))
    console.print(f"[bold]ingest {run_dir}[/]")
    ingest_cmd(source=str(run_dir), dataset=EM_DEMO_DATASET)


@app.command("demo")
def demo_cmd(
    port: Annotated[int, typer.Option(help="API port.")] = 8000,
    serve: Annotated[bool, typer.Option(help="Keep serving after the sample query.")] = True,
    em: Annotated[bool, typer.Option(
        help="Also synthesize an EM volume, reconstruct it and load the result.")] = True,
) -> None:
    """Start Neo4j, load the C. elegans connectomes and (with --em) a reconstruction of a
    synthetic EM volume, serve the API, show sample queries."""
    import threading

    import httpx
    import uvicorn

    from graphql_api.app import create_app

    if external_target() is None:
        neo4j_start()
    for name in ("cook2019", "varshney2011"):
        console.print(f"[bold]ingest {name}[/]")
        ingest_cmd(source=name, dataset=name)
    if em:
        _demo_em(cache_dir() / "demo-em")
    config = uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.1)
    if not server.started:
        raise fail(f"the API did not start on port {port}")
    url = f"http://127.0.0.1:{port}/graphql"
    out.print(f"\nGraphQL API: {url} (open it in a browser for GraphiQL)\n")
    for query in (SAMPLE_QUERY, EM_SAMPLE_QUERY) if em else (SAMPLE_QUERY,):
        answer = httpx.post(url, json={"query": query}, timeout=30).json()
        out.print("sample query:", style="bold")
        out.print(query, highlight=False, markup=False)
        out.print("answer:", style="bold")
        out.print(json.dumps(answer, indent=2), highlight=False, markup=False)
    if not serve:
        server.should_exit = True
        thread.join(timeout=10)
        return
    out.print("\nserving; press Ctrl+C to stop (Neo4j keeps running: `connectome neo4j stop`)")
    try:
        thread.join()
    except KeyboardInterrupt:
        server.should_exit = True
        thread.join(timeout=10)


reconstruct.cli.register(app)
connectome.bloom_cli.register(app)
