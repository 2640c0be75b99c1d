"""Turning one chunk of a table into checked values, with errors naming the file, row and column.

Every conversion is vectorised (pyarrow compute, numpy); only the first bad value is looked at
one by one, to name it. The rules:

- ids are exact integers: whole-number text (`720575940626000001`) or an integer column,
  never a value that passed through float64 (decimal text such as `...001.0`, a float, bool or
  timestamp column is refused: float64 holds integers exactly only up to 2^53, and FlyWire or
  MICrONS ids are larger);
- counts (weights) are whole numbers too; text such as `5.0` and whole values in a float column
  below 2^53 are accepted, since nothing there can have been rounded;
- numbers are finite (`inf`, `nan`, `1e999` are refused); in a numeric column NaN means missing;
- text is trimmed, empty means missing, control characters (NUL included) are refused, and
  names are capped at `limits.INDEXED_TEXT_MAX_BYTES` bytes of UTF-8;
- a point is `[x, y, z]` (commas or spaces between three numbers) or a list column of three
  numbers (readers also take three number columns).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from connectome_query.ingest.errors import IngestError
from connectome_query.ingest.limits import FLOAT_EXACT_MAX, INDEXED_TEXT_MAX_BYTES, INT64_MAX

_INTEGER_TEXT = r"^[+-]?[0-9]+$"
_WHOLE_TEXT = r"^[+-]?[0-9]+(\.0*)?$"
_DECIMAL_TEXT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_CONTROL = r"[\x00-\x1f\x7f]"
_CONTROL_BUT_SPACE = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
_NUM = r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_SEP = r"(?:\s*,\s*|\s+)"
_POINT = rf"^\[\s*(?P<x>{_NUM}){_SEP}(?P<y>{_NUM}){_SEP}(?P<z>{_NUM})\s*\]$"
_ID_FLOAT_HINT = ("float64 holds whole numbers exactly only up to 2^53 (9,007,199,254,740,992), "
                  "and FlyWire or MICrONS ids are larger")


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _first(mask: Any) -> int | None:
    """Position of the first True in a boolean numpy or arrow array (nulls count as False)."""
    if isinstance(mask, pa.Array | pa.ChunkedArray):
        mask = pc.fill_null(mask, False).to_numpy(zero_copy_only=False)
    hits = np.flatnonzero(mask)
    return int(hits[0]) if len(hits) else None


def _first_failure(values: pa.Array, convert: Callable[[pa.Array], Any]) -> int:
    """The first position where `convert` raises, by bisection (convert fails on `values`)."""
    lo, hi = 0, len(values)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            convert(values.slice(lo, mid - lo))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            hi = mid
        else:
            lo = mid
    return lo


class Chunk:
    """Some consecutive rows of a table; `first_row` is the number of its first row."""

    def __init__(self, path: str, data: pa.Table, first_row: int,
                 record0: int | None = None) -> None:
        self.path = path
        self.data = data
        self.first_row = first_row
        self.record0 = first_row - 1 if record0 is None else record0
        """How many records of the table come before this chunk."""
        self.n = data.num_rows

    def slice(self, start: int, length: int) -> Chunk:
        return Chunk(self.path, self.data.slice(start, length), self.first_row + start,
                     self.record0 + start)

    def row_of(self, position: int) -> int:
        return self.first_row + position

    def has(self, column: str) -> bool:
        return column in self.data.column_names

    def require(self, *columns: str) -> None:
        """Raise when a required column is absent (the message lists what is there)."""
        for column in columns:
            if not self.has(column):
                have = ", ".join(self.data.column_names) or "none"
                raise IngestError(self.path, f"missing required column (columns present: {have})",
                                  column=column)

    def error(self, position: int | None, column: str | None, message: str) -> IngestError:
        return IngestError(self.path, message,
                           row=None if position is None else self.row_of(position), column=column)

    def column(self, column: str) -> pa.Array:
        values = self.data.column(column).combine_chunks()
        if pa.types.is_dictionary(values.type):
            values = values.dictionary_decode()
        return values

    def _refuse_type(self, column: str, values: pa.Array, expected: str) -> IngestError:
        return self.error(None, column, f"stored as {values.type}; expected {expected}")

    def _blank_text(self, values: pa.Array) -> tuple[pa.Array, np.ndarray]:
        """Trimmed text (blank becomes null) and the mask of missing values."""
        text = pc.utf8_trim_whitespace(values)
        missing = pc.fill_null(pc.equal(text, ""), True).to_numpy(zero_copy_only=False)
        if missing.any():
            text = pc.if_else(pa.array(missing), pa.scalar(None, text.type), text)
        return text, missing

    def _require(self, column: str, missing: np.ndarray) -> None:
        pos = _first(missing)
        if pos is not None:
            raise self.error(pos, column, "empty value")

    # --- whole numbers -------------------------------------------------------------------

    def integers(self, column: str, *, minimum: int | None = 0, ids: bool = True) -> np.ndarray:
        """Whole numbers as int64 (every row must have one); `ids` applies the id rules."""
        values = self.column(column)
        t = values.type
        if _is_text(t) or pa.types.is_decimal(t):
            out = self._integers_from_text(column, pc.cast(values, pa.string()), ids)
        elif pa.types.is_integer(t):
            self._require(column, values.is_null().to_numpy(zero_copy_only=False))
            pos = (_first(pc.greater(values, pa.scalar(INT64_MAX, pa.uint64())))
                   if pa.types.is_uint64(t) else None)
            if pos is not None:
                raise self.error(pos, column, f"{values[pos].as_py()} is outside the 64-bit "
                                 "integer range")
            out = pc.cast(values, pa.int64()).to_numpy(zero_copy_only=False)
        elif pa.types.is_floating(t) and not ids:
            out = self._integers_from_floats(column, values)
        elif pa.types.is_floating(t):
            raise self.error(None, column, f"stored as {t}: ids must be an integer column; "
                             f"{_ID_FLOAT_HINT}")
        elif pa.types.is_null(t):
            raise self.error(0, column, "empty value")
        else:
            raise self._refuse_type(column, values, "whole numbers" + (" (ids)" if ids else ""))
        if minimum is not None:
            pos = _first(out < minimum)
            if pos is not None:
                raise self.error(pos, column, f"value {int(out[pos])} is below {minimum}")
        return out

    def _integers_from_text(self, column: str, values: pa.Array, ids: bool) -> np.ndarray:
        text, missing = self._blank_text(values)
        self._require(column, missing)
        pos = _first(pc.invert(pc.match_substring_regex(
            text, _INTEGER_TEXT if ids else _WHOLE_TEXT)))
        if pos is not None:
            shown = text[pos].as_py()
            if ids and _DECIMAL_TEXT.match(shown):
                raise self.error(pos, column, f"id written as a decimal number ({shown!r}): ids "
                                 "must be whole-number text; a value written this way has "
                                 f"passed through float64, which may round it ({_ID_FLOAT_HINT}); "
                                 "export the column as integers")
            raise self.error(pos, column, f"not a 64-bit whole number: {shown!r}")
        text = pc.replace_substring_regex(text, r"^\+", "")
        if not ids:
            text = pc.replace_substring_regex(text, r"\.0*$", "")
        try:
            return pc.cast(text, pa.int64()).to_numpy(zero_copy_only=False)
        except pa.ArrowInvalid:
            pos = _first_failure(text, lambda part: pc.cast(part, pa.int64()))
            raise self.error(pos, column, f"{text[pos].as_py()!r} is outside the 64-bit integer "
                             "range") from None

    def _integers_from_floats(self, column: str, values: pa.Array) -> np.ndarray:
        as_float = pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
        self._require(column, np.isnan(as_float))
        with np.errstate(invalid="ignore"):
            bad = ~(np.abs(as_float) <= FLOAT_EXACT_MAX) | (as_float != np.floor(as_float))
        pos = _first(bad)
        if pos is not None:
            raise self.error(pos, column, f"not a whole number below 2^53: {as_float[pos]!r}")
        return as_float.astype(np.int64)

    # --- real numbers --------------------------------------------------------------------

    def numbers(self, column: str, *, required: bool = False) -> np.ndarray:
        """Finite float64 values; NaN where missing (an error when `required`)."""
        values = self.column(column)
        t = values.type
        from_text = _is_text(t)
        if from_text:
            text, missing = self._blank_text(values)
            try:
                out = pc.cast(text, pa.float64())
            except pa.ArrowInvalid:
                at = _first_failure(text, lambda part: pc.cast(part, pa.float64()))
                raise self.error(at, column, f"not a number: {text[at].as_py()!r}") from None
        elif pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
            out = pc.cast(values, pa.float64(), safe=False)
        elif pa.types.is_null(t):
            out = pa.nulls(len(values), pa.float64())
        else:
            raise self._refuse_type(column, values, "numbers")
        array = pc.fill_null(out, np.nan).to_numpy(zero_copy_only=False).astype(np.float64)
        bad = np.isinf(array)
        if from_text:
            bad |= np.isnan(array) & ~missing  # the text "nan"
        pos = _first(bad)
        if pos is not None:
            shown = text[pos].as_py() if from_text else array[pos]
            raise self.error(pos, column, f"not a finite number: {shown!r}")
        if required:
            self._require(column, np.isnan(array))
        return array

    # --- text ----------------------------------------------------------------------------

    def texts(self, column: str, *, required: bool = False,
              limit: int | None = INDEXED_TEXT_MAX_BYTES, controls: bool = True) -> pa.Array:
        """Trimmed strings, null where missing; refuses control characters (all of them, or with
        `controls=False` all but tab and line breaks) and, with `limit`, values longer than
        `limit` bytes of UTF-8."""
        values = self.column(column)
        t = values.type
        if pa.types.is_floating(t):
            values = pc.if_else(pc.is_nan(values), pa.scalar(None, t), values)
        if not (_is_text(t) or pa.types.is_integer(t) or pa.types.is_floating(t)
                or pa.types.is_boolean(t) or pa.types.is_decimal(t) or pa.types.is_null(t)):
            raise self._refuse_type(column, values, "text")
        text, missing = self._blank_text(pc.cast(values, pa.string()))
        if required:
            self._require(column, missing)
        pos = _first(pc.match_substring_regex(text, _CONTROL if controls else _CONTROL_BUT_SPACE))
        if pos is not None:
            shown = text[pos].as_py()
            bad = next(c for c in shown if ord(c) < 32 or ord(c) == 127)
            raise self.error(pos, column, f"control character U+{ord(bad):04X} in the text "
                             f"{shown[:80]!r}")
        if limit is not None:
            size = pc.fill_null(pc.binary_length(text), 0).to_numpy(zero_copy_only=False)
            pos = _first(size > limit)
            if pos is not None:
                raise self.error(pos, column, f"{int(size[pos]):,} bytes of text, over the "
                                 f"{limit:,}-byte limit for names (Neo4j refuses index keys "
                                 "over 8,167 bytes)")
        return text

    def choices(self, column: str, allowed: Collection[str], *, default: str | None = None,
                what: str = "value") -> pa.Array:
        """Lower-cased text that must be one of `allowed`; missing becomes `default` (an error
        when there is no default)."""
        text = pc.utf8_lower(self.texts(column, required=default is None))
        if default is not None:
            text = pc.fill_null(text, default)
        pos = _first(pc.invert(pc.is_in(text, pa.array(sorted(allowed)))))
        if pos is not None:
            raise self.error(pos, column, f"unknown {what} {text[pos].as_py()!r} (expected one "
                             f"of {sorted(allowed)})")
        return text

    # --- positions -----------------------------------------------------------------------

    def point(self, column: str, *, required: bool = True) -> np.ndarray:
        """(n, 3) float64 from one column of `[x, y, z]` text or lists of three numbers; rows
        without a position are NaN (an error when `required`)."""
        values = self.column(column)
        if _is_text(values.type):
            return self._positions_from_text(column, values, required)
        if pa.types.is_list(values.type) or pa.types.is_large_list(values.type) or \
                pa.types.is_fixed_size_list(values.type):
            return self._positions_from_lists(column, values, required)
        if pa.types.is_null(values.type) and not required:
            return np.full((len(values), 3), np.nan)
        raise self._refuse_type(column, values, "a position [x, y, z]")

    def optional_counts(self, column: str) -> pa.Array:
        """Whole numbers from 0 below 2^53, null where missing."""
        values = self.numbers(column)
        missing = np.isnan(values)
        pos = _first(~missing & ((values < 0) | (values != np.floor(values))
                                 | (values > FLOAT_EXACT_MAX)))
        if pos is not None:
            raise self.error(pos, column, f"not a whole number from 0 to 2^53: {values[pos]!r}")
        return pa.array(np.where(missing, 0, values).astype(np.int64), pa.int64(),
                        mask=missing)

    def _positions_from_text(self, stem: str, values: pa.Array, required: bool) -> np.ndarray:
        text, missing = self._blank_text(values)
        if required:
            self._require(stem, missing)
        parsed = pc.extract_regex(text, _POINT)
        pos = _first(pc.and_(pc.is_null(parsed), pa.array(~missing)))
        if pos is not None:
            raise self.error(pos, stem, f"expected a position [x, y, z], found "
                             f"{text[pos].as_py()!r}")
        out = np.stack([pc.fill_null(pc.cast(pc.struct_field(parsed, axis), pa.float64()), np.nan)
                        .to_numpy(zero_copy_only=False) for axis in "xyz"], axis=1)
        return self._finite_positions(stem, out, text)

    def _positions_from_lists(self, stem: str, values: pa.Array, required: bool) -> np.ndarray:
        lengths = pc.fill_null(pc.list_value_length(values), -1).to_numpy(zero_copy_only=False)
        missing = values.is_null().to_numpy(zero_copy_only=False)
        if required:
            self._require(stem, missing)
        pos = _first((lengths != 3) & ~missing)
        if pos is not None:
            raise self.error(pos, stem, f"expected a position [x, y, z], found "
                             f"{values[pos].as_py()!r}")
        flat = pc.list_flatten(values)
        if not (pa.types.is_integer(flat.type) or pa.types.is_floating(flat.type)):
            raise self._refuse_type(stem, values, "a list of three numbers")
        numbers = pc.fill_null(pc.cast(flat, pa.float64(), safe=False), np.nan)
        out = np.full((len(values), 3), np.nan)
        out[~missing] = numbers.to_numpy(zero_copy_only=False).reshape(-1, 3)
        pos = _first(np.isnan(out).any(axis=1) & ~missing)
        if pos is not None:
            raise self.error(pos, stem, f"expected a position [x, y, z], found "
                             f"{values[pos].as_py()!r}")
        return self._finite_positions(stem, out, values)

    def _finite_positions(self, stem: str, out: np.ndarray, shown: pa.Array) -> np.ndarray:
        pos = _first(np.isinf(out).any(axis=1))
        if pos is not None:
            raise self.error(pos, stem, f"position not finite: {shown[pos].as_py()!r}")
        return out
