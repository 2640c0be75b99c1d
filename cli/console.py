"""Terminal output shared by every command: results on stdout, progress and errors on stderr."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True)
"""Progress, status lines and errors."""
out = Console()
"""Results: tables, written paths, answers."""


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `message` as an error and return the Exit (with `code`) for the caller to raise."""
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def progress_bar() -> Iterator[Progress]:
    """A bar per step, with counts and elapsed time."""
    with Progress(
        TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console, transient=False,
    ) as bar:
        yield bar
