"""One chunk of a source table into the canonical columns of `ingest.tables` (`NEURON_SCHEMA`,
`CONNECTION_SCHEMA`, `SYNAPSE_SCHEMA`), every value checked on the way.

Each reader says which of its columns hold what (`NeuronColumns`, `ConnectionColumns`,
`SynapseColumns`); the conversions are the same for every format, and for tables built in code.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from connectome_query.graphdb.settings import IngestSettings, from_env
from connectome_query.ingest.limits import INDEXED_TEXT_MAX_BYTES, INT64_MAX
from connectome_query.ingest.readers._columns import Chunk, _first
from connectome_query.ingest.readers.files import TableFile
from connectome_query.ingest.tables import (
    CONNECTION_SCHEMA,
    NEURON_SCHEMA,
    NEURON_TEXT,
    SYNAPSE_SCHEMA,
    Part,
)
from connectome_query.schema.vocabulary import COMPARTMENT_NAMES

KINDS = ("chemical", "electrical")


def _nulls(n: int, kind: pa.DataType) -> pa.Array:
    return pa.nulls(n, kind)


def _float(values: np.ndarray) -> pa.Array:
    return pa.array(values, pa.float64(), from_pandas=True)  # NaN becomes null


@dataclass(frozen=True)
class NeuronColumns:
    """Where a neuron table keeps each canonical column (None: not in this table)."""

    body_id: str
    min_id: int = 0
    text: tuple[tuple[str, str], ...] = ()
    """(canonical, source) for the name-like columns of `NEURON_TEXT`."""
    size: str | None = None
    soma: str | tuple[str, str, str] | None = None
    """A point column ("[x, y, z]"), or three number columns."""
    counts: tuple[tuple[str, str], ...] = ()
    """(canonical, source) for whole-number properties (`nmjSynapses`)."""
    constants: tuple[tuple[str, str], ...] = ()

    def sources(self) -> list[str]:
        cols = [self.body_id, *(s for _, s in self.text), *(s for _, s in self.counts)]
        if self.size:
            cols.append(self.size)
        if isinstance(self.soma, tuple):
            cols += list(self.soma)
        elif self.soma:
            cols.append(self.soma)
        return list(dict.fromkeys(cols))

    def convert(self, chunk: Chunk) -> Part:
        n = chunk.n
        out: dict[str, pa.Array] = {
            "bodyId": pa.array(chunk.integers(self.body_id, minimum=self.min_id), pa.int64())}
        given = dict(self.text)
        for name in NEURON_TEXT:
            out[name] = chunk.texts(given[name]) if name in given else _nulls(n, pa.string())
        for name, value in self.constants:
            out[name] = pa.array([value] * n, pa.string())
        out["size"] = _float(chunk.numbers(self.size)) if self.size else _nulls(n, pa.float64())
        soma = self._soma(chunk)
        for i, axis in enumerate("XYZ"):
            out[f"soma{axis}"] = _float(soma[:, i])
        counts = dict(self.counts)
        out["nmjSynapses"] = (chunk.optional_counts(counts["nmjSynapses"])
                              if "nmjSynapses" in counts else _nulls(n, pa.int64()))
        return Part(chunk.path, _rows(chunk), pa.table(out, schema=NEURON_SCHEMA))

    def _soma(self, chunk: Chunk) -> np.ndarray:
        if self.soma is None:
            return np.full((chunk.n, 3), np.nan)
        if isinstance(self.soma, tuple):
            xyz = np.stack([chunk.numbers(c) for c in self.soma], axis=1)
        else:
            xyz = chunk.point(self.soma, required=False)
        xyz[np.isnan(xyz).any(axis=1)] = np.nan  # a soma needs all three coordinates
        return xyz


def _rows(chunk: Chunk) -> np.ndarray:
    return np.arange(chunk.first_row, chunk.first_row + chunk.n, dtype=np.int64)


@dataclass(frozen=True)
class ConnectionColumns:
    """Where a connection table keeps each canonical column."""

    pre: str
    post: str
    weight: str
    kind: str | None = None
    roi_info: str | None = None
    published_weight: str | None = None
    """A source's own weight where it is not a whole number (`weight` is then rounded up)."""

    def sources(self) -> list[str]:
        return [c for c in (self.pre, self.post, self.weight, self.kind, self.roi_info,
                            self.published_weight) if c]

    def convert(self, chunk: Chunk) -> Part:
        n = chunk.n
        kinds = (chunk.choices(self.kind, KINDS, what="kind") if self.kind
                 else pa.array(["chemical"] * n, pa.string()))
        info, rois, weights = (roi_info_columns(chunk, self.roi_info) if self.roi_info else
                               (_nulls(n, pa.string()), _nulls(n, pa.list_(pa.string())),
                                _nulls(n, pa.list_(pa.int64()))))
        table = pa.table({
            "bodyIdPre": pa.array(chunk.integers(self.pre)),
            "bodyIdPost": pa.array(chunk.integers(self.post)),
            "weight": pa.array(chunk.integers(self.weight, ids=False)),
            "kind": kinds, "roiInfo": info, "rois": rois, "roiWeights": weights,
            "publishedWeight": (_float(chunk.numbers(self.published_weight))
                                if self.published_weight else _nulls(n, pa.float64())),
        }, schema=CONNECTION_SCHEMA)
        return Part(chunk.path, _rows(chunk), table)


ROI_SHAPE = 'expected JSON like {"ROI": {"pre": 1, "post": 2}}'


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a count")


def check_roi_name(name: Any) -> str | None:
    """Why `name` cannot be an ROI name, or None when it can."""
    if not isinstance(name, str) or not name.strip():
        return "an ROI name is empty"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return f"control character in the ROI name {name[:80]!r}"
    if len(name.encode("utf-8")) > INDEXED_TEXT_MAX_BYTES:
        return (f"ROI name of {len(name.encode('utf-8')):,} bytes, over the "
                f"{INDEXED_TEXT_MAX_BYTES:,}-byte limit for names")
    return None


def parse_roi_info(text: str) -> tuple[list[str], list[int]]:
    """ROI names and per-ROI weights (`post`, else `pre`) of one roiInfo JSON text; ValueError
    saying what is wrong (counts must be whole numbers that fit in 64 bits)."""
    try:
        parsed = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise ValueError(f"{ROI_SHAPE} ({exc})") from None
    if not isinstance(parsed, dict) or not all(isinstance(v, dict) for v in parsed.values()):
        raise ValueError(ROI_SHAPE)
    names: list[str] = []
    weights: list[int] = []
    for name, counts in parsed.items():
        problem = check_roi_name(name)
        if problem:
            raise ValueError(problem)
        for key, value in counts.items():
            if isinstance(value, bool) or not isinstance(value, int) or \
                    not 0 <= value <= INT64_MAX:
                raise ValueError(f"ROI {name!r}: {key} = {value!r} is not a whole number from 0 "
                                 "to 2^63-1")
        names.append(name)
        weights.append(int(counts.get("post", counts.get("pre", 0))))
    return names, weights


def roi_info_columns(chunk: Chunk, column: str) -> tuple[pa.Array, pa.Array, pa.Array]:
    """roiInfo text (made single-line where it spans lines), `rois` and `roiWeights`."""
    texts = chunk.texts(column, limit=None, controls=False).to_pylist()
    rois: list[list[str] | None] = []
    weights: list[list[int] | None] = []
    for i, text in enumerate(texts):
        if text is None:
            rois.append(None)
            weights.append(None)
            continue
        try:
            names, counts = parse_roi_info(text)
        except ValueError as exc:
            raise chunk.error(i, column, str(exc)) from None
        if any(c in text for c in "\r\n\t"):
            texts[i] = json.dumps(json.loads(text))
        rois.append(names or None)
        weights.append(counts or None)
    return (pa.array(texts, pa.string()), pa.array(rois, pa.list_(pa.string())),
            pa.array(weights, pa.list_(pa.int64())))


@dataclass(frozen=True)
class SynapseColumns:
    """Where a synapse table keeps each canonical column."""

    pre: str
    post: str
    position: str | tuple[str, str, str]
    """A point column, or three number columns (x, y, z)."""
    synapse_id: str | None = None
    """None: synapses are numbered by their record (1, 2, ...)."""
    min_id: int = 0
    voxel_size: tuple[float, float, float] = (1.0, 1.0, 1.0)
    size: str | None = None
    confidence: str | None = None
    compartment: str | None = None
    roi: str | None = None
    drop_invalid: bool = False
    """CAVE: drop (and count) autapses and synapses on root id 0."""

    def sources(self) -> list[str]:
        return list(dict.fromkeys(c for c in (
            self.synapse_id, self.pre, self.post,
            *((self.position,) if isinstance(self.position, str) else self.position), self.size,
            self.confidence, self.compartment, self.roi) if c))

    def convert(self, chunk: Chunk) -> Part:
        n = chunk.n
        ids = (chunk.integers(self.synapse_id) if self.synapse_id else
               np.arange(chunk.record0 + 1, chunk.record0 + 1 + n, dtype=np.int64))
        pre = chunk.integers(self.pre, minimum=self.min_id)
        post = chunk.integers(self.post, minimum=self.min_id)
        xyz = self._positions(chunk)
        confidence = chunk.numbers(self.confidence) if self.confidence else np.full(n, np.nan)
        pos = _first((confidence < 0) | (confidence > 1))
        if pos is not None:
            raise chunk.error(pos, self.confidence, f"confidence {confidence[pos]} is outside "
                              "[0, 1]")
        table = pa.table({
            "synapseId": pa.array(ids), "bodyIdPre": pa.array(pre), "bodyIdPost": pa.array(post),
            "x": pa.array(xyz[:, 0]), "y": pa.array(xyz[:, 1]), "z": pa.array(xyz[:, 2]),
            "size": _float(chunk.numbers(self.size)) if self.size else _nulls(n, pa.float64()),
            "confidence": _float(confidence),
            "postCompartment": (chunk.choices(self.compartment, COMPARTMENT_NAMES,
                                              default="unknown", what="compartment")
                                if self.compartment else pa.array(["unknown"] * n)),
            "roi": chunk.texts(self.roi) if self.roi else _nulls(n, pa.string()),
        }, schema=SYNAPSE_SCHEMA)
        rows = _rows(chunk)
        if not self.drop_invalid:
            return Part(chunk.path, rows, table)
        keep = (pre != post) & (pre != 0) & (post != 0)
        return Part(chunk.path, rows[keep], table.filter(pa.array(keep)),
                    dropped=int(n - keep.sum()))


    def _positions(self, chunk: Chunk) -> np.ndarray:
        """Positions in nm: the table's values times the voxel size, every one finite."""
        if isinstance(self.position, str):
            raw = chunk.point(self.position)
            columns = [self.position] * 3
        else:
            raw = np.stack([chunk.numbers(c, required=True) for c in self.position], axis=1)
            columns = list(self.position)
        with np.errstate(over="ignore", invalid="ignore"):
            xyz = raw * np.asarray(self.voxel_size, dtype=np.float64)
        bad = ~np.isfinite(xyz)
        pos = _first(bad.any(axis=1))
        if pos is not None:
            axis = int(np.flatnonzero(bad[pos])[0])
            value = float(raw[pos, axis])
            raise chunk.error(pos, columns[axis], f"{'xyz'[axis]} = {value!r} times the voxel "
                              f"size {self.voxel_size[axis]!r} nm is not a finite number")
        return xyz


class FileStream:
    """A table converted chunk by chunk; `parts()` reads it afresh each time it is called."""

    def __init__(self, file: TableFile,
                 columns: NeuronColumns | ConnectionColumns | SynapseColumns,
                 names: dict[str, str], chunk_rows: int | None = None) -> None:
        self.file = file
        self.columns = columns
        self.path = file.name
        self.names = names
        """canonical column -> the column of the file (for messages)."""
        self.chunk_rows = chunk_rows or from_env(IngestSettings).chunk_rows

    def parts(self) -> Iterator[Part]:
        for chunk in self.file.chunks(self.columns.sources(), self.chunk_rows):
            yield self.columns.convert(chunk)

    def source_column(self, canonical: str) -> str:
        return self.names.get(canonical, canonical)

    @property
    def rows_hint(self) -> int | None:
        return getattr(self.file, "num_rows", None)


def present(file: TableFile, *candidates: str) -> str | None:
    """The first of `candidates` the table has."""
    return next((c for c in candidates if file.has(c)), None)


def text_columns(file: TableFile, pairs: Sequence[tuple[str, Sequence[str]]]
                 ) -> tuple[tuple[str, str], ...]:
    """(canonical, source) for each canonical column whose source (first of its candidates)
    the table has."""
    found = []
    for canonical, candidates in pairs:
        source = present(file, *candidates)
        if source:
            found.append((canonical, source))
    return tuple(found)
