"""`python -m connectome_query.cli`: the `connectome` command."""

from connectome_query.cli.main import app

app()
