"""The errors ingest raises for bad input: they name the file, the row and the column, or the
parameter, so that a person can find and fix the problem."""

from __future__ import annotations

from pathlib import Path


class IngestError(ValueError):
    """Input that cannot be loaded. Raised before anything is written to the database.

    `row` is the line number as a person sees it in the file (the header is line 1 of a CSV or
    spreadsheet; Parquet rows count from 1), or None when the problem is the whole file or a
    whole column.
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
        self.after_writes = False
        """Set by the loader when the error came while writing (the partial version is gone)."""
        where = [self.path]
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {message}")


class ParameterError(ValueError):
    """A command-line option or function argument ingest cannot use; names the parameter."""

    def __init__(self, parameter: str, message: str) -> None:
        self.parameter = parameter
        self.message = message
        super().__init__(f"{parameter}: {message}")
