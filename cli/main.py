"""The `connectome` command: one entry point, a subcommand per job.

The commands parse arguments, show progress and call the stages; they hold no logic of their own.
"""

from __future__ import annotations

import typer

from connectome_query.cli import adapt, bloom, compare, ingest, prepare, reconstruct, serve, view
from connectome_query.cli.export import export_app
from connectome_query.cli.neo4j import neo4j_app
from connectome_query.cli.tokens import tokens_app

app = typer.Typer(
    help="connectome-query: EM reconstruction to a Neo4j connectome with GraphQL circuit queries.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(neo4j_app, name="neo4j")
app.add_typer(ingest.app)
app.add_typer(compare.app)
app.add_typer(serve.app)
app.add_typer(reconstruct.app)
app.add_typer(adapt.app)
app.add_typer(prepare.app)
app.add_typer(view.app)
app.add_typer(export_app, name="export")
app.add_typer(tokens_app, name="tokens")
app.add_typer(bloom.bloom_app, name="bloom")
