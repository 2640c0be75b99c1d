"""`connectome report`, `neuroglancer` and `plot`: the pictures the API serves, from the
command line (a run's report.html, a viewer link, a dataset's figures as PNG/SVG)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any

import typer

from connectome_query.cli.console import fail, out
from connectome_query.reconstruct.errors import ReconstructError

app = typer.Typer()

API_HELP = "Base address of the running API that serves the volumes and the viewer."


@app.command("report")
def report_cmd(
    run_dir: Annotated[Path, typer.Argument(help="run directory (connectome reconstruct)")],
    output: Annotated[Path | None, typer.Option(
        "--out", help="where to write (default RUN_DIR/report.html)")] = None,
) -> None:
    """Write a self-contained HTML report of a reconstruction run: sections with segments and
    synapses over the EM (truth beside), metrics, timings, histograms, ERL per cell, errors."""
    from connectome_query.reconstruct.report.build import write_report

    try:
        out.print(f"wrote {write_report(run_dir, output)}")
    except ReconstructError as exc:
        raise fail(str(exc), 1) from None
    except (OSError, ValueError, KeyError) as exc:
        raise fail(f"report of {run_dir}: {exc!r}", 1) from None


def _meta(dataset: str) -> dict[str, object]:
    from connectome_query.graphdb import catalog
    from connectome_query.graphdb.driver import open_driver
    from connectome_query.graphql_api.web.access import META_OF

    with open_driver() as driver:
        version = catalog.resolve(driver, dataset)
        records, _, _ = driver.execute_query(META_OF, key=version.key)
    return dict(records[0]["meta"]) if records else {}


@app.command("neuroglancer")
def neuroglancer_cmd(
    dataset: Annotated[str, typer.Argument(help="dataset name")],
    body_ids: Annotated[str, typer.Option(help="segments to show, comma-separated")] = "",
    api: Annotated[str, typer.Option(help=API_HELP)] = "http://127.0.0.1:8000/",
) -> None:
    """Print a link that opens the dataset's volumes in the Neuroglancer viewer the API
    serves (no internet needed), with the given segments shown."""
    from connectome_query.graphdb.catalog import UnknownDataset
    from connectome_query.graphql_api.web import viewer

    try:
        ids = [int(b) for b in body_ids.split(",") if b.strip()]
    except ValueError:
        raise fail(f"--body-ids: expected comma-separated integers, got {body_ids!r}",
                   2) from None
    try:
        meta = _meta(dataset)
    except UnknownDataset as exc:
        raise fail(str(exc), 1) from None
    if not viewer.has_volumes(meta):
        raise fail(f"dataset {dataset!r} has no volumes: load a reconstruction run "
                   "directory (connectome ingest RUN_DIR)", 1)
    base = api if api.endswith("/") else api + "/"
    state = viewer.viewer_state(base, dataset, meta, ids)
    out.print(viewer.viewer_url(base, state),
              soft_wrap=True, highlight=False, markup=False)


def _plot_numbers(dataset: str, neuron: int | None) -> tuple[str, dict[str, Any]]:
    """The page's numbers for `dataset` (or one of its neurons), read as the API reads them."""
    from connectome_query.graphdb import catalog
    from connectome_query.graphdb.driver import open_async_driver, open_driver, resolve_target
    from connectome_query.graphql_api.web import pages
    from connectome_query.graphql_api.web.access import Dataset

    target = resolve_target()
    with open_driver(target) as driver:
        version = catalog.resolve(driver, dataset, database=target.database)
    ds = Dataset(name=version.name, key=version.key, version=version.version, meta={})

    async def read() -> dict[str, Any]:
        adriver = open_async_driver(target)
        try:
            if neuron is None:
                return await pages.dataset_numbers(adriver, target.database, ds)
            return await pages.neuron_numbers(adriver, target.database, ds, neuron)
        finally:
            await adriver.close()

    # its own thread: a caller may already run an event loop (a notebook, a test's browser)
    with ThreadPoolExecutor(1) as pool:
        return ds.name, pool.submit(asyncio.run, read()).result()


@app.command("plot")
def plot_cmd(
    dataset: Annotated[str, typer.Argument(help="dataset name")],
    picture: Annotated[str, typer.Argument(help=(
        "heatmap, weights, out-degree, in-degree (dataset); upstream, downstream, "
        "compartments (with --neuron)"))],
    output: Annotated[Path, typer.Option("--out", help="file to write: .png or .svg")],
    neuron: Annotated[int | None, typer.Option(help="bodyId, for a neuron's pictures")] = None,
) -> None:
    """Write one picture of a dataset or neuron page (the same drawing, from the same numbers)
    to PNG or SVG, the plotted table as JSON in the file's description."""
    from fastapi import HTTPException

    from connectome_query.graphdb.catalog import UnknownDataset
    from connectome_query.graphdb.local_server import Neo4jServerError
    from connectome_query.graphql_api.web import pictures
    from connectome_query.plotting import charts

    fmt = output.suffix.lower().lstrip(".")
    if fmt not in charts.FORMATS:
        raise fail(f"--out {output}: the name must end in .png or .svg", 2)
    names = pictures.DATASET if neuron is None else pictures.NEURON
    if picture not in names:
        raise fail(f"picture {picture!r}: one of {', '.join(names)}"
                   + ("" if neuron is not None else " (a neuron's pictures need --neuron)"), 2)
    try:
        name, numbers = _plot_numbers(dataset, neuron)
    except (UnknownDataset, Neo4jServerError) as exc:
        raise fail(str(exc), 1) from None
    except HTTPException as exc:
        raise fail(str(exc.detail), 1) from None
    fig, table = (pictures.dataset_picture(picture, name, numbers) if neuron is None
                  else pictures.neuron_picture(picture, numbers))
    output.write_bytes(charts.render(fig, fmt, pictures.table_json(table)))
    out.print(f"wrote {output}")
