"""`connectome neo4j ...`: the local Neo4j 5.26 server, or the one NEO4J_URI names."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from connectome_query.cli.console import console, fail, out
from connectome_query.graphdb.driver import local_server, open_driver
from connectome_query.graphdb.local_server import Neo4jServerError
from connectome_query.graphdb.settings import external_target

neo4j_app = typer.Typer(help="The local Neo4j 5.26 server (or the one NEO4J_URI names).",
                        no_args_is_help=True)


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
    from connectome_query.graphdb.local_server import dump_database

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
    from connectome_query.graphdb.local_server import load_database

    if external_target() is not None:
        raise fail("NEO4J_URI names another server; load dumps there with `neo4j-admin database "
                   "load`, or unset NEO4J_URI to load into the local server")
    try:
        with console.status(f"loading {dump}..."):
            restarted = load_database(local_server(), dump)
    except Neo4jServerError as exc:
        raise fail(str(exc)) from None
    out.print(f"loaded {dump}" + ("" if restarted else "; start it with `connectome neo4j start`"))
