"""Reading tabular files with errors that name the file, the row and the column.

CSV is read as text and every field is converted here, so a bad value is reported where it sits
(the header is line 1). Parquet rows count from 1.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from connectome_query.ingest.errors import IngestError


def _decode(path: Path, data: bytes, encoding: str) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise IngestError(
            path,
            f"not valid {encoding} text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "re-save the file as UTF-8 or pass --encoding",
            row=line,
        ) from None


def _is_blank(value: object) -> bool:
    return value is None or value == "" or (isinstance(value, float) and np.isnan(value))


class Table:
    """A parsed table plus how to point at its rows."""

    def __init__(self, path: Path, frame: pd.DataFrame, first_row: int) -> None:
        self.path = path
        self.frame = frame
        self.first_row = first_row
        """The row number (as shown to people) of the frame's first record."""

    def row_of(self, position: int) -> int:
        return self.first_row + position

    def require(self, *columns: str) -> None:
        """Raise when a required column is absent (the message lists what is there)."""
        for column in columns:
            if column not in self.frame.columns:
                have = ", ".join(map(str, self.frame.columns)) or "none"
                raise IngestError(
                    self.path, f"missing required column (columns present: {have})", column=column
                )

    def text(self, column: str, *, required: bool = True) -> pd.Series:
        """Strings with surrounding spaces removed; empty means null (an error if required).

        Built as a plain list: `Series.map` may turn None into NaN under pandas 3, which a later
        `str()` would make the text "nan"."""
        cleaned: list[str | None] = []
        for value in self.frame[column].astype(object).tolist():
            if isinstance(value, str):
                value = value.strip()
            if _is_blank(value) or value is pd.NA:
                cleaned.append(None)
            else:
                cleaned.append(str(value))
        if required and None in cleaned:
            pos = cleaned.index(None)
            raise IngestError(self.path, "empty value", row=self.row_of(pos), column=column)
        return pd.Series(cleaned, index=self.frame.index, dtype=object)

    def integer(self, column: str, *, minimum: int | None = None,
                required: bool = True) -> pd.Series:
        """Whole numbers; reports the first non-numeric, fractional or too-small value."""
        raw = self.frame[column]
        if pd.api.types.is_integer_dtype(raw.dtype) and not raw.isna().any():
            values = raw.astype("int64")
        else:
            text = raw.astype(object).map(lambda v: v.strip() if isinstance(v, str) else v)
            numeric = pd.to_numeric(text, errors="coerce")
            blank = text.map(_is_blank)
            bad = numeric.isna() & ~blank
            as_float = numeric.to_numpy(dtype=np.float64, na_value=np.nan)
            with np.errstate(invalid="ignore"):
                out_of_range = ~np.isnan(as_float) & ~(np.abs(as_float) < 2.0**63)
            frac = numeric.notna() & ~out_of_range & (numeric != np.floor(numeric.fillna(0)))
            problem = (bad | frac | out_of_range
                       | (blank if required else pd.Series(False, index=raw.index)))
            if problem.any():
                pos = int(np.flatnonzero(problem.to_numpy())[0])
                shown = raw.iloc[pos]
                what = ("empty value" if blank.iloc[pos]
                        else f"not a 64-bit whole number: {shown!r}")
                raise IngestError(self.path, what, row=self.row_of(pos), column=column)
            if not required and blank.any():
                return numeric.astype("Int64")
            values = numeric.astype("int64")
        if minimum is not None and (values < minimum).any():
            pos = int(np.flatnonzero((values < minimum).to_numpy())[0])
            raise IngestError(
                self.path, f"value {int(values.iloc[pos])} is below {minimum}",
                row=self.row_of(pos), column=column,
            )
        return values

    def number(self, column: str, *, required: bool = False) -> pd.Series:
        """Real numbers (null allowed unless required); reports the first non-numeric value."""
        raw = self.frame[column]
        if pd.api.types.is_float_dtype(raw.dtype) or pd.api.types.is_integer_dtype(raw.dtype):
            values = raw.astype("float64")
            blank = values.isna()
        else:
            text = raw.astype(object).map(lambda v: v.strip() if isinstance(v, str) else v)
            values = pd.to_numeric(text, errors="coerce").astype("float64")
            blank = text.map(_is_blank)
            bad = values.isna() & ~blank
            if bad.any():
                pos = int(np.flatnonzero(bad.to_numpy())[0])
                raise IngestError(self.path, f"not a number: {raw.iloc[pos]!r}",
                                  row=self.row_of(pos), column=column)
        if required and blank.any():
            pos = int(np.flatnonzero(blank.to_numpy())[0])
            raise IngestError(self.path, "empty value", row=self.row_of(pos), column=column)
        infinite = np.isinf(values.fillna(0).to_numpy())
        if infinite.any():
            pos = int(np.flatnonzero(infinite)[0])
            raise IngestError(self.path, "infinite value", row=self.row_of(pos), column=column)
        return values


def read_table(path: str | Path, *, encoding: str = "utf-8") -> Table:
    """Read a CSV (text, all fields as strings) or Parquet file; reject empty files."""
    p = Path(path)
    if not p.exists():
        raise IngestError(p, "file not found")
    if p.is_dir():
        raise IngestError(p, "is a directory, expected a file")
    if p.suffix.lower() in (".parquet", ".pq"):
        try:
            frame = pq.read_table(p).to_pandas()
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise IngestError(p, f"not a readable Parquet file ({exc})") from None
        if frame.empty:
            raise IngestError(p, "the file holds no rows")
        return Table(p, frame, first_row=1)
    data = p.read_bytes()
    if not data.strip():
        raise IngestError(p, "the file is empty")
    text = _decode(p, data, encoding)
    if not text.strip():
        raise IngestError(p, "the file is empty")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise IngestError(p, f"malformed CSV ({exc})", row=reader.line_num) from None
    header = [h.strip() for h in rows[0]]
    if len(set(header)) != len(header):
        dup = next(h for h in header if header.count(h) > 1)
        raise IngestError(p, "column named twice in the header", row=1, column=dup)
    body = rows[1:]
    while body and not any(field.strip() for field in body[-1]):
        body.pop()
    if not body:
        raise IngestError(p, "the file has a header but no data rows")
    for i, row in enumerate(body):
        if len(row) != len(header) and any(field.strip() for field in row):
            raise IngestError(
                p, f"expected {len(header)} fields, found {len(row)}", row=i + 2
            )
    body = [r if len(r) == len(header) else [""] * len(header) for r in body]
    frame = pd.DataFrame(body, columns=header, dtype=object)
    return Table(p, frame, first_row=2)
