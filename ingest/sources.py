"""Turning the SOURCE argument of `connectome ingest` into tables.

SOURCE is one of: a built-in published dataset name (`cook2019`, `varshney2011`); a folder of
neuPrint-style files (neurons + connections); a reconstruction run folder (segments.parquet +
synapses.parquet); or a synapse-level table file (.csv or .parquet).
"""

from __future__ import annotations

from pathlib import Path

from connectome_query.ingest.errors import IngestError
from connectome_query.ingest.readers.celegans import (
    CELEGANS_SOURCES,
    read_cook2019,
    read_varshney2011,
)
from connectome_query.ingest.readers.neuprint import find_neuprint_files, read_neuprint
from connectome_query.ingest.readers.run_dir import is_run_dir, read_run_dir
from connectome_query.ingest.readers.synapse_table import read_synapse_table
from connectome_query.ingest.tables import ConnectomeTables

BUILTIN = {"cook2019": read_cook2019, "varshney2011": read_varshney2011}
assert tuple(BUILTIN) == CELEGANS_SOURCES


def read_source(
    source: str,
    *,
    encoding: str = "utf-8",
    voxel_size: tuple[float, float, float] = (1.0, 1.0, 1.0),
    neurons: Path | None = None,
) -> ConnectomeTables:
    """Read whatever SOURCE names; raise IngestError when it names nothing readable."""
    if source in BUILTIN:
        return BUILTIN[source]()
    path = Path(source)
    if not path.exists():
        raise IngestError(
            path, "no such file or folder, and not a built-in dataset "
            f"(built-in: {', '.join(BUILTIN)})"
        )
    if path.is_dir():
        if is_run_dir(path):
            return read_run_dir(path)
        pair = find_neuprint_files(path)
        if pair:
            return read_neuprint(*pair, encoding=encoding)
        raise IngestError(
            path, "folder holds neither neurons + connections files (neuPrint style) nor "
            "segments.parquet + synapses.parquet (a reconstruction run)"
        )
    if path.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise IngestError(path, "unsupported file type (expected .csv or .parquet)")
    return read_synapse_table(path, voxel_size=voxel_size, neurons_path=neurons,
                              encoding=encoding)
