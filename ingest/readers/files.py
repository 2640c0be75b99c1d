"""Tables read in chunks of rows: CSV (streamed by pyarrow), Parquet (row batches) or a pandas
frame already in memory, each yielding `Chunk`s (`_columns`) whose rows know their number.

CSV is read as text, every field a string, so a bad value is reported where it sits; the header
is row 1 and the first record row 2. Parquet rows (and rows of a frame) count from 1. A file is
read once to check it and again to write it: if it changes in between, the second read fails
rather than write something that was never checked.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from connectome_query.ingest.errors import IngestError, ParameterError
from connectome_query.ingest.readers._columns import Chunk

CSV_BLOCK_BYTES = 8 << 20
"""Bytes of CSV text parsed at a time (about 100k rows of a synapse table)."""
HEADER_BYTES = 1 << 20
"""Most bytes the header line may take."""
DEFAULT_CHUNK_ROWS = 250_000


def check_encoding(encoding: str) -> str:
    """The canonical name of a text encoding; ParameterError when Python knows no such codec."""
    try:
        return codecs.lookup(encoding).name
    except (LookupError, TypeError, ValueError):
        raise ParameterError("--encoding", f"unknown text encoding {encoding!r} (for example "
                             "utf-8, latin-1, cp1252)") from None


class TableFile:
    """A table read in chunks; `columns` are its column names (CSV headers stripped)."""

    name: str
    columns: list[str]

    def has(self, column: str) -> bool:
        return column in self.columns

    def require(self, *columns: str) -> None:
        """Raise when a required column is absent (the message lists what is there)."""
        for column in columns:
            if column not in self.columns:
                have = ", ".join(map(str, self.columns)) or "none"
                raise IngestError(self.name, f"missing required column (columns present: {have})",
                                  column=column)

    def chunks(self, columns: Sequence[str], rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[Chunk]:
        raise NotImplementedError


class _OnDisk(TableFile):
    """A file whose size and modification time are checked before and after each read."""

    def __init__(self, path: Path) -> None:
        if not path.exists():
            raise IngestError(path, "file not found")
        if path.is_dir():
            raise IngestError(path, "is a directory, expected a file")
        self.path = path
        self.name = str(path)
        self._stamp = self._now()

    def _now(self) -> tuple[int, int]:
        st = os.stat(self.path)
        return st.st_size, st.st_mtime_ns

    def _check_unchanged(self) -> None:
        if self._now() != self._stamp:
            raise IngestError(self.path, "the file changed while it was being loaded; load it "
                              "again once it is complete")


def open_bytes(path: Path) -> BinaryIO:
    """The bytes of a file, decompressed when its name ends in .gz (pyarrow's CSV reader
    decompresses such files by their name too)."""
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def _locate_undecodable(path: Path, encoding: str) -> IngestError | None:
    """The first byte that is not valid `encoding` text, as an error naming its line."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    lines = 1
    with open_bytes(path) as f:
        while block := f.read(1 << 20):
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                # exc.object is the decoder's buffered bytes followed by this block
                inside = max(0, exc.start - pending)
                return IngestError(
                    path, f"not valid {encoding} text (byte 0x{exc.object[exc.start]:02x} at "
                    f"offset {offset + inside}); re-save the file as UTF-8 or pass --encoding",
                    row=lines + block[:inside].count(b"\n"))
            lines += block.count(b"\n")
            offset += len(block)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return IngestError(path, f"not valid {encoding} text (the file ends inside a character)",
                           row=lines)
    return None


_ROW_IN_ARROW_MESSAGE = re.compile(r"Row #(\d+)")


class CsvFile(_OnDisk):
    """A CSV file streamed by pyarrow, every column read as text."""

    def __init__(self, path: Path, encoding: str = "utf-8") -> None:
        super().__init__(path)
        self.encoding = check_encoding(encoding)
        self._raw_header = self._read_header()
        self.columns = [h.strip() for h in self._raw_header]
        for h in self.columns:
            if self.columns.count(h) > 1:
                raise IngestError(path, "column named twice in the header", row=1, column=h)

    def _decode_error(self) -> IngestError:
        return _locate_undecodable(self.path, self.encoding) or IngestError(
            self.path, f"not valid {self.encoding} text; re-save the file as UTF-8 or pass "
            "--encoding")

    def _read_header(self) -> list[str]:
        try:
            with open_bytes(self.path) as f:
                head = f.read(HEADER_BYTES)
        except (OSError, EOFError) as exc:
            raise IngestError(self.path, f"not a readable gzip file ({exc})") from None
        if head.startswith(codecs.BOM_UTF8) and self.encoding.startswith("utf-8"):
            head = head[3:]
        if not head.strip():
            raise IngestError(self.path, "the file is empty")
        try:
            text = codecs.getincrementaldecoder(self.encoding)().decode(head)
        except UnicodeDecodeError:
            raise self._decode_error() from None
        text = text.lstrip("\ufeff")
        if not text.strip():
            raise IngestError(self.path, "the file is empty")
        if "\n" not in text and "\r" not in text and len(head) == HEADER_BYTES:
            raise IngestError(self.path, f"the header line is longer than {HEADER_BYTES:,} bytes",
                              row=1)
        try:
            header = next(csv.reader(io.StringIO(text, newline="")))
        except (csv.Error, StopIteration) as exc:
            raise IngestError(self.path, f"malformed CSV header ({exc})", row=1) from None
        return header

    def _arrow_encoding(self) -> str:
        return "utf8" if self.encoding in ("utf-8", "utf-8-sig") else self.encoding

    def chunks(self, columns: Sequence[str], rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[Chunk]:
        """Every record, in chunks of about `CSV_BLOCK_BYTES` of text; trailing blank lines are
        ignored, a blank line between records is an error."""
        self._check_unchanged()
        invalid: list[tuple[int | None, int, int, str]] = []

        def on_invalid(row: pacsv.InvalidRow) -> str:
            invalid.append((row.number, row.expected_columns, row.actual_columns, row.text))
            return "skip"

        try:
            reader = pacsv.open_csv(
                self.path,
                read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES, use_threads=False,
                                               encoding=self._arrow_encoding()),
                parse_options=pacsv.ParseOptions(newlines_in_values=True,
                                                 ignore_empty_lines=False,
                                                 invalid_row_handler=on_invalid),
                convert_options=pacsv.ConvertOptions(
                    column_types={h: pa.string() for h in self._raw_header},
                    strings_can_be_null=False, quoted_strings_can_be_null=False))
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise self._arrow_error(exc) from None
        records = 0
        data_rows = 0
        blank_from: int | None = None
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
                raise self._arrow_error(exc) from None
            self._raise_invalid(invalid)
            if batch.num_rows == 0:
                continue
            table = pa.Table.from_batches([batch]).rename_columns(self.columns)
            first_row = 2 + records
            records += table.num_rows
            tail = _blank_tail(table)
            if blank_from is not None and tail != 0:
                raise IngestError(self.path, "blank line among the data rows", row=blank_from)
            if tail is not None:
                blank_from = blank_from or first_row + tail
                table = table.slice(0, tail)
            if table.num_rows:
                data_rows += table.num_rows
                yield from _split(Chunk(self.name, table.select(list(columns)), first_row,
                                          first_row - 2), rows)
        self._check_unchanged()
        if data_rows == 0:
            raise IngestError(self.path, "the file has a header but no data rows")

    def _raise_invalid(self, invalid: list[tuple[int | None, int, int, str]]) -> None:
        for number, expected, actual, text in invalid:
            if text.strip() and actual != expected:
                raise IngestError(self.path, f"expected {expected} fields, found {actual}",
                                  row=number)
        if invalid:  # a line of spaces between records
            number = invalid[0][0]
            raise IngestError(self.path, "blank line among the data rows", row=number)

    def _arrow_error(self, exc: Exception) -> IngestError:
        text = str(exc)
        if isinstance(exc, UnicodeDecodeError) or "UTF8" in text or "UTF-8" in text:
            return self._decode_error()
        if "Empty CSV file" in text:
            return IngestError(self.path, "the file is empty")
        found = _ROW_IN_ARROW_MESSAGE.search(text)
        return IngestError(self.path, f"malformed CSV ({text})",
                           row=int(found.group(1)) if found else None)


def _blank_tail(table: pa.Table) -> int | None:
    """Where the batch's trailing run of blank records starts, or None when its last record has
    a value. (A blank record before the last value is left to the column checks, which report
    its empty id.)"""
    if table.num_rows == 0:
        return None
    blank = np.ones(table.num_rows, dtype=bool)
    for column in table.columns:
        text = pc.utf8_trim_whitespace(column.combine_chunks())
        blank &= pc.equal(text, "").to_numpy(zero_copy_only=False)
        if not blank[-1]:
            return None
    filled = np.flatnonzero(~blank)
    return int(filled[-1]) + 1 if len(filled) else 0


def _split(chunk: Chunk, rows: int) -> Iterator[Chunk]:
    if chunk.n <= rows:
        yield chunk
        return
    for start in range(0, chunk.n, rows):
        yield chunk.slice(start, rows)


class ParquetFile(_OnDisk):
    """A Parquet file read a row batch at a time (only the columns asked for)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        with self._open() as file:
            self.columns = list(file.schema_arrow.names)
            self.num_rows = int(file.metadata.num_rows)
        if self.num_rows == 0:
            raise IngestError(path, "the file holds no rows")

    def _open(self) -> pq.ParquetFile:
        # pre_buffer=False: with it, pyarrow keeps every row group it has read in memory
        try:
            return pq.ParquetFile(self.path, pre_buffer=False)
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise IngestError(self.path, f"not a readable Parquet file ({exc})") from None

    def chunks(self, columns: Sequence[str], rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[Chunk]:
        self._check_unchanged()
        first = 1
        with self._open() as file:
            batches = file.iter_batches(batch_size=rows, columns=list(columns))
            while True:
                try:
                    batch = next(batches)
                except StopIteration:
                    break
                except Exception as exc:
                    raise IngestError(self.path, f"not a readable Parquet file ({exc})") from None
                yield Chunk(self.name, pa.Table.from_batches([batch]), first)
                first += batch.num_rows
        self._check_unchanged()


class FrameTable(TableFile):
    """A pandas frame already in memory (a table built in code), named for error messages."""

    def __init__(self, name: str, frame: pd.DataFrame) -> None:
        self.name = name
        self.frame = frame
        self.columns = [str(c) for c in frame.columns]

    def chunks(self, columns: Sequence[str], rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[Chunk]:
        for start in range(0, len(self.frame), rows):
            part = self.frame.iloc[start:start + rows]
            arrays = {}
            for column in columns:
                try:
                    arrays[column] = pa.array(part[column], from_pandas=True)
                except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
                    raise IngestError(self.name, f"cannot read the column ({exc})",
                                      column=column) from None
            yield Chunk(self.name, pa.table(arrays), start + 1)


def open_table(path: str | Path, *, encoding: str = "utf-8") -> TableFile:
    """A CSV or Parquet file, by its suffix (anything but .parquet/.pq is read as CSV)."""
    p = Path(path)
    if p.suffix.lower() in (".parquet", ".pq"):
        return ParquetFile(p)
    return CsvFile(p, encoding)


def read_whole(path: str | Path, *, encoding: str = "utf-8") -> Chunk:
    """A small table, every column, as one chunk."""
    file = open_table(path, encoding=encoding)
    chunks = list(file.chunks(file.columns, rows=1 << 62))
    data = pa.concat_tables([c.data for c in chunks])
    return Chunk(file.name, data, chunks[0].first_row, chunks[0].record0)


def frame_chunk(name: str, frame: pd.DataFrame, first_row: int) -> Chunk:
    """A frame of mixed Python values (a spreadsheet) as text, as one chunk."""
    def text(value: object) -> str | None:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return None
        return str(value)
    data = pa.table({str(c): pa.array([text(v) for v in frame[c].tolist()], pa.string())
                     for c in frame.columns})
    return Chunk(name, data, first_row, first_row - 2)
