"""`connectome tokens ...`: API tokens (hashed at rest) and public datasets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from connectome_query.cli.console import console, fail, out

if TYPE_CHECKING:
    from connectome_query.graphql_api.auth import TokenStore

tokens_app = typer.Typer(
    help="API tokens for the GraphQL API (enforced when CONNECTOME_AUTH=required).",
    no_args_is_help=True,
)

FileOption = Annotated[Path | None, typer.Option(
    "--file", help="Token file (default: CONNECTOME_TOKENS_FILE or tokens.json beside the "
    "local Neo4j home).")]


def _store(path: Path | None) -> TokenStore:
    from connectome_query.graphql_api.auth import TokenStore, default_tokens_file

    return TokenStore(path or default_tokens_file())



@tokens_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="A label for the token (who or what uses it).")],
    dataset: Annotated[list[str], typer.Option(
        "--dataset", "-d", help="A dataset it may read (repeat; '*' for all).")],
    file: FileOption = None,
) -> None:
    """Create a token and print it once; only its sha256 hash is stored."""
    try:
        token, secret = _store(file).create(name, dataset)
    except ValueError as exc:
        raise fail(str(exc)) from None
    console.print(f"token {token.id} ({name}) reads: {', '.join(token.datasets)}\n"
                  "store it now, it is not shown again; send it as "
                  "'Authorization: Bearer <token>'")
    out.print(secret, highlight=False, markup=False)


@tokens_app.command("list")
def list_tokens(
    file: FileOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List tokens (ids, names, datasets, state; never secrets or hashes)."""
    tokens = [t.public_view() for t in _store(file).all()]
    if as_json:
        out.print(json.dumps(tokens, indent=1), highlight=False, markup=False)
        return
    table = Table("id", "name", "datasets", "created", "state")
    for t in tokens:
        table.add_row(t["id"], t["name"], ", ".join(t["datasets"]), t["createdAt"],
                      "revoked" if t["revoked"] else "active")
    out.print(table)


@tokens_app.command("revoke")
def revoke(
    id_or_name: Annotated[str, typer.Argument(help="Token id, or a name (revokes all so named).")],
    file: FileOption = None,
) -> None:
    """Revoke a token; the API refuses it from the next request on."""
    hits = _store(file).revoke(id_or_name)
    if not hits:
        raise fail(f"no active token with id or name {id_or_name!r}")
    out.print(f"revoked {', '.join(t.id for t in hits)}")


@tokens_app.command("public")
def public(
    dataset: Annotated[str, typer.Argument(help="Dataset name.")],
    off: Annotated[bool, typer.Option("--off", help="Make it private again.")] = False,
) -> None:
    """Mark a dataset public (readable without a token) or private (`Meta.public`)."""
    from connectome_query.graphdb.catalog import set_public
    from connectome_query.graphdb.driver import open_driver
    from connectome_query.graphdb.local_server import Neo4jServerError
    from connectome_query.schema.model import check_dataset_name

    try:
        check_dataset_name(dataset)
        with open_driver() as driver:
            found = set_public(driver, dataset, not off)
    except (ValueError, Neo4jServerError) as exc:
        raise fail(str(exc)) from None
    if not found:
        raise fail(f"no dataset {dataset!r} in the graph")
    out.print(f"{dataset} is now {'private' if off else 'public'}")
