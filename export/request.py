"""What a matrix export is asked for, and the pieces that pass between its stages.

`MatrixRequest` is the request as the CLI, the HTTP route and the GraphQL field all build it;
`normalized()` checks it once for all three. `Chunk` is a run of entries on their way from the
graph reader (`export.matrix`) to a format writer (`export.formats`). Both live here so that the
reader and the writers depend on them and not on each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from connectome_query.graphdb.settings import ExportSettings, from_env
from connectome_query.schema.model import DATASET_NAME

FORMATS: dict[str, tuple[str, str]] = {
    "csv": ("text/csv", ".csv"),
    "parquet": ("application/vnd.apache.parquet", ".parquet"),
    "arrow": ("application/vnd.apache.arrow.stream", ".arrows"),
    "npz": ("application/octet-stream", ".npz"),
    "mtx": ("text/x-matrix-market", ".mtx"),
}
"""Format name -> (media type, file suffix)."""

FORMAT_ALIASES = {"ipc": "arrow", "arrows": "arrow", "feather": "arrow", "mm": "mtx",
                  "matrixmarket": "mtx", "pq": "parquet"}
SYNAPSE_TYPES = ("chemical", "electrical", "monoamine", "neuropeptide")
LEVELS = ("neuron", "type")


class ExportError(Exception):
    """A request the export cannot serve; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ExportLimits:
    """Caps and tuning, from `CONNECTOME_EXPORT_*` environment variables or defaults."""

    max_edges: int = 50_000_000
    """Most nonzero entries (rows of an edge list) one export may hold."""
    max_neurons: int = 2_000_000
    """Most neurons (matrix rows/columns) one export may select."""
    page_neurons: int = 5_000
    """Neurons whose edges one read transaction fetches."""
    inline_edges: int = 10_000
    """GraphQL answers inline up to this many entries; beyond it, a download URL."""
    inline_neurons: int = 5_000

    @classmethod
    def from_env(cls) -> ExportLimits:
        """The limits `CONNECTOME_EXPORT_*` set (see `graphdb.settings.ExportSettings`)."""
        env = from_env(ExportSettings)
        return cls(max_edges=env.max_edges, max_neurons=env.max_neurons,
                   page_neurons=env.page_neurons, inline_edges=env.inline_edges,
                   inline_neurons=env.inline_neurons)


@dataclass(frozen=True)
class MatrixRequest:
    """What to export. `body_ids` and `types` select neurons (both ends of every edge)."""

    dataset: str
    body_ids: tuple[int, ...] | None = None
    types: tuple[str, ...] | None = None
    rois: tuple[str, ...] | None = None
    min_weight: int = 1
    synapse_type: str = "chemical"
    level: str = "neuron"
    format: str = "parquet"
    neurons: bool = False
    """Embed the neuron metadata table (NPZ); other formats fetch it from /export/neurons."""
    version: int | None = None
    """The dataset version asked for (None: the current one)."""
    key: str | None = None
    """The dataset version read (`graphdb.catalog`), set by `prepare`."""

    def normalized(self) -> MatrixRequest:
        """The same request checked and canonicalized; ExportError (400) says what is wrong."""
        if not isinstance(self.dataset, str) or not DATASET_NAME.match(self.dataset):
            raise ExportError(f"invalid dataset name {self.dataset!r}")
        fmt = FORMAT_ALIASES.get(str(self.format).lower(), str(self.format).lower())
        if fmt not in FORMATS:
            raise ExportError(f"unknown format {self.format!r}; use one of {', '.join(FORMATS)}")
        kind = str(self.synapse_type).lower()
        if kind not in SYNAPSE_TYPES:
            raise ExportError(f"unknown synapse type {self.synapse_type!r}; use one of "
                              f"{', '.join(SYNAPSE_TYPES)}")
        level = str(self.level).lower()
        if level not in LEVELS:
            raise ExportError(f"unknown level {self.level!r}; use neuron or type")
        if isinstance(self.min_weight, bool) or not isinstance(self.min_weight, int):
            raise ExportError(f"minWeight must be an integer, got {self.min_weight!r}")
        if self.min_weight < 0:
            raise ExportError(f"minWeight must be >= 0 (weights are synapse counts), "
                              f"got {self.min_weight}")
        if self.version is not None and (isinstance(self.version, bool) or not isinstance(
                self.version, int) or self.version < 1):
            raise ExportError(f"version must be a whole number >= 1, got {self.version!r}")
        if self.min_weight >= 2**63:
            raise ExportError(f"minWeight must be below 2^63 (weights are 64-bit integers), "
                              f"got {self.min_weight:.3g}")
        ids = None
        if self.body_ids is not None:
            try:
                ids = tuple(sorted({int(i) for i in self.body_ids}))
            except (TypeError, ValueError):
                raise ExportError("bodyIds must be integers") from None
            if not ids:
                raise ExportError("bodyIds is empty; leave it out to export every neuron")
            if ids[0] < 0 or ids[-1] >= 2**63:
                raise ExportError("bodyIds must be between 0 and 2^63 - 1")
        types = _strings(self.types, "types")
        rois = _strings(self.rois, "rois")
        if rois is not None and kind != "chemical":
            raise ExportError("the ROI filter applies to chemical synapses only: gap junctions "
                              "and neuromodulator edges carry no ROI")
        return replace(self, body_ids=ids, types=types, rois=rois, synapse_type=kind,
                       level=level, format=fmt)

    @classmethod
    def from_lists(cls, dataset: str, *, body_ids: Sequence[int] | None = None,
                   types: Sequence[str] | None = None, rois: Sequence[str] | None = None,
                   **options: Any) -> MatrixRequest:
        """A request from lists as a query string, a JSON body or the command line give them
        (None: no selection); `options` are the other fields."""
        return cls(dataset=dataset, body_ids=_tuple(body_ids), types=_tuple(types),
                   rois=_tuple(rois), **options)

    @property
    def media_type(self) -> str:
        return FORMATS[self.format][0]

    def filename(self) -> str:
        parts = [self.dataset, self.synapse_type]
        if self.level == "type":
            parts.append("by-type")
        return "_".join(parts) + FORMATS[self.format][1]


def _tuple(values: Sequence[Any] | None) -> tuple[Any, ...] | None:
    return tuple(values) if values is not None else None


def _strings(values: Sequence[str] | None, name: str) -> tuple[str, ...] | None:
    if values is None:
        return None
    out = tuple(sorted({str(v) for v in values}))
    if not out or any(not v for v in out):
        raise ExportError(f"{name} must be a non-empty list of non-empty names")
    return out


def split_names(values: Sequence[str] | None) -> list[str] | None:
    """Repeated options and comma-separated lists both work (`type=A&type=B`, `type=A,B`)."""
    if not values:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


@dataclass
class Chunk:
    """Entries of some rows: row/column positions in the index and weights, sorted."""

    rows: np.ndarray
    cols: np.ndarray
    weights: np.ndarray
