"""The one error type ingest raises for bad input: it names the file, the row and the column."""

from __future__ import annotations

from pathlib import Path


class IngestError(ValueError):
    """Input that cannot be loaded. Raised before anything is written to the database.

    `row` is the line number as a person sees it in the file (the header is line 1 of a CSV or
    spreadsheet; Parquet rows count from 1), or None when the problem is the whole file.
    """

    def __init__(
        self,
        path: str | Path,
        message: str,
        *,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.path = str(path)
        self.row = row
        self.column = column
        self.message = message
        where = [self.path]
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {message}")
