"""`connectome bloom ...`: a Neo4j Bloom perspective for one dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from connectome_query.cli.console import console, fail, out
from connectome_query.schema.bloom_profile import write_perspective

bloom_app = typer.Typer(help="Neo4j Bloom: a perspective with search phrases for a dataset.",
                        no_args_is_help=True)


@bloom_app.command("perspective")
def perspective_cmd(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset in the graph.")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Where to write it (default: ./DATASET-perspective.json).")] = None,
) -> None:
    """Write a Bloom perspective: categories, cell-class colours, search phrases."""
    from connectome_query.graphdb.driver import open_driver
    from connectome_query.graphdb.local_server import Neo4jServerError
    from connectome_query.schema.model import check_dataset_name

    try:
        check_dataset_name(dataset)
        path = output or Path(f"{dataset}-perspective.json")
        with open_driver() as driver:
            perspective = write_perspective(driver, dataset, path)
    except (ValueError, Neo4jServerError) as exc:
        raise fail(str(exc)) from None
    rules = sum(len(c.get("styleRules", [])) for c in perspective["categories"])
    console.print(f"{len(perspective['templates'])} search phrases, {rules} style rules")
    out.print(f"wrote {path} (import it in Bloom: Perspectives -> Import)")

