"""The forms a dataset takes inside ingest.

Readers turn each input table into a `Stream` of `Part`s: checked rows in the canonical columns
below, with the row numbers they came from. A `Source` is a dataset as such streams; it is read
once to check it (`ingest.prepare`) and once more to write it, so memory stays bounded by a
chunk plus what must be known about the whole dataset (ids, connection weights).
`ConnectomeTables` is the same dataset held in memory as pandas frames: what `read_source` gives
and what code that builds a small dataset by hand passes to the loader.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa

NEURON_TEXT = ("instance", "type", "cellClass", "neurotransmitter", "status")
"""Name-like neuron properties (capped at `limits.INDEXED_TEXT_MAX_BYTES`)."""

NEURON_SCHEMA = pa.schema(
    [("bodyId", pa.int64(), False)]
    + [(name, pa.string()) for name in NEURON_TEXT]
    + [("size", pa.float64()), ("somaX", pa.float64()), ("somaY", pa.float64()),
       ("somaZ", pa.float64()), ("nmjSynapses", pa.int64())])
"""Neurons: `bodyId` is required; the rest may be null (a soma has all three coordinates or
none)."""

CONNECTION_SCHEMA = pa.schema([
    ("bodyIdPre", pa.int64(), False), ("bodyIdPost", pa.int64(), False),
    ("weight", pa.int64(), False), ("kind", pa.string(), False), ("roiInfo", pa.string()),
    ("rois", pa.list_(pa.string())), ("roiWeights", pa.list_(pa.int64())),
    ("publishedWeight", pa.float64()),
])
"""Connections: one row per (pre, post, kind); `kind` is "chemical" or "electrical"; `rois` and
`roiWeights` are read from the roiInfo JSON; `publishedWeight` is a source's own weight where it
is not a whole number (`weight` is then that value rounded up)."""

SYNAPSE_SCHEMA = pa.schema([
    ("synapseId", pa.int64(), False), ("bodyIdPre", pa.int64(), False),
    ("bodyIdPost", pa.int64(), False), ("x", pa.float64(), False), ("y", pa.float64(), False),
    ("z", pa.float64(), False), ("size", pa.float64()), ("confidence", pa.float64()),
    ("postCompartment", pa.string(), False), ("roi", pa.string()),
])
"""Synapses: one row per chemical synapse, locations in nm."""


@dataclass
class Part:
    """Checked rows of one input table, in canonical columns; `rows[i]` is the row number of
    `table`'s row i in the file; `dropped` counts rows left out on purpose (CAVE autapses)."""

    path: str
    rows: np.ndarray
    table: pa.Table
    dropped: int = 0


class Stream(Protocol):
    """One input table as parts; each call of `parts()` reads it afresh."""

    path: str

    def parts(self) -> Iterator[Part]: ...

    def source_column(self, canonical: str) -> str:
        """The table's own name for a canonical column (for messages)."""
        ...


@dataclass
class Source:
    """A dataset as streams, with how to treat what the streams do not say."""

    name: str
    neurons: Stream | None
    connections: Stream | None = None
    synapses: Stream | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    synapse_bodies: Literal["add", "listed"] = "add"
    """`add`: a body seen only in the synapses is a neuron without properties (CAVE);
    `listed`: every body must be in the neuron table (a reconstruction run)."""
    modulatory: pd.DataFrame | None = None
    """Neuromodulator edges (`ingest.modulatory.COLUMNS`), small and held in memory."""
    cave_drops: bool = False
    """The synapse stream drops autapses and rows on root id 0 (CAVE marks them invalid): their
    count goes to Meta `droppedSynapses`, and a table with no row left is an error."""


@dataclass
class ConnectomeTables:
    """A whole dataset in memory, columns as in the schemas above (pandas dtypes)."""

    source: str
    neurons: pd.DataFrame
    connections: pd.DataFrame
    synapses: pd.DataFrame | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    modulatory: pd.DataFrame | None = None
    """Neuromodulator edges (`ingest.modulatory.COLUMNS`), or None."""


def body_id_for_name(name: str) -> int:
    """A stable integer id for a cell known only by name (C. elegans): 53 bits of BLAKE2b.

    53 bits keep ids exact in JavaScript clients; the loader checks that no two names collide.
    """
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 11


def undirected_gap_junctions(edges: pd.DataFrame) -> pd.DataFrame:
    """Collapse directed gap-junction listings to one row per unordered pair.

    Published tables list each gap junction once per direction; where the two directions
    disagree, the larger count is kept (both rows describe the same junctions).
    """
    a = edges["bodyIdPre"].to_numpy()
    b = edges["bodyIdPost"].to_numpy()
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    pairs = pd.DataFrame({"bodyIdPre": lo, "bodyIdPost": hi, "weight": edges["weight"].to_numpy()})
    out = pairs.groupby(["bodyIdPre", "bodyIdPost"])["weight"].max().reset_index()
    out["kind"] = "electrical"
    return out
