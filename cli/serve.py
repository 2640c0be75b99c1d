"""`connectome serve`, `export-sdl`, `demo`: the GraphQL API."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Annotated

import typer

from connectome_query.cli import reconstruct
from connectome_query.cli.console import console, fail, out
from connectome_query.cli.ingest import ingest_cmd
from connectome_query.cli.neo4j import neo4j_start
from connectome_query.graphdb.driver import resolve_target
from connectome_query.graphdb.local_server import Neo4jServerError
from connectome_query.graphdb.settings import cache_dir, external_target

app = typer.Typer()


@app.command("serve")
def serve_cmd(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    tls: Annotated[bool, typer.Option(
        help="Serve https (neuprint-python needs it): the given certificate, else a "
             "self-signed one made on first use.")] = False,
    cert: Annotated[Path | None, typer.Option(help="TLS certificate (PEM).")] = None,
    key: Annotated[Path | None, typer.Option(help="TLS private key (PEM).")] = None,
) -> None:
    """Serve the GraphQL API (GraphiQL at /graphql) and the neuPrint routes (/api) on FastAPI."""
    import uvicorn

    from connectome_query.graphql_api.app import create_app

    if (cert is None) != (key is None):
        raise fail("give both --cert and --key, or neither")
    try:
        resolve_target()
    except Neo4jServerError as exc:
        raise fail(str(exc)) from None
    certfile = keyfile = None
    if tls or cert is not None:
        if cert is None or key is None:
            from connectome_query.graphql_api.tls import self_signed

            cert, key = self_signed(cache_dir() / "tls")
            out.print(f"https with a self-signed certificate: {cert}")
        certfile, keyfile = str(cert), str(key)
    uvicorn.run(create_app(), host=host, port=port, log_level="info", ssl_certfile=certfile,
                ssl_keyfile=keyfile)


@app.command("export-sdl")
def export_sdl_cmd(
    path: Annotated[Path, typer.Argument(help="Where to write the SDL.")] = Path(
        "schema/schema.graphql"),
) -> None:
    """Write the GraphQL schema (SDL) that the API serves."""
    from connectome_query.graphql_api.schema import export_sdl

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
    from connectome_query.reconstruct import pipeline, synth, synthetic_em

    em_dir, run_dir = work / "em", work / "run"
    cfg = synth.SynthConfig((64, 64, 64), (40.0, 16.0, 16.0), "clean", seed=1)
    console.print(f"[bold]synthesize an EM volume[/] (64^3 voxels, 16x16x40 nm) in {em_dir}")
    with reconstruct.rich_progress() as tick:
        synthetic_em.write_synthetic_em(em_dir, cfg, tick)
    console.print(f"[bold]reconstruct it[/] into {run_dir}")
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run (a kept one may be of old code)
    with reconstruct.stage_progress() as progress:
        result = pipeline.reconstruct(em_dir, run_dir, progress=progress)
    console.print(reconstruct.metrics_table(result))
    reconstruct.write_run_report(run_dir)
    console.print(f"[bold]ingest {run_dir}[/]")
    ingest_cmd(source=str(run_dir), dataset=EM_DEMO_DATASET)


def _print_pages(base: str, em: bool) -> None:
    """The demo's pages: dataset pages, its reconstruction in Neuroglancer, the run report."""
    names = ["cook2019", "varshney2011", *([EM_DEMO_DATASET] if em else [])]
    out.print("dataset pages: " + ", ".join(f"{base}datasets/{n}" for n in names))
    if em:
        out.print(f"Neuroglancer (reconstruction): {base}datasets/{EM_DEMO_DATASET}/neuroglancer")
        out.print(f"run report: {cache_dir() / 'demo-em' / 'run' / 'report.html'}")
    out.print("")


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

    from connectome_query.graphql_api.app import create_app

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
    out.print(f"\nGraphQL API: {url} (open it in a browser for GraphiQL)")
    _print_pages(f"http://127.0.0.1:{port}/", em)
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

