"""Turning the SOURCE argument of `connectome ingest` into a source.

SOURCE is one of: a built-in published dataset name (`cook2019`, `witvliet2020_8`, ...:
`builtin_descriptions`); a folder of
neuPrint-style files (neurons + connections); a neuPrint bulk export folder (traced-*.csv); a
FlyWire Codex download folder (connections*.csv[.gz] and neuron tables); a reconstruction run
folder (segments.parquet +
synapses.parquet); or a synapse-level table file (.csv or .parquet). `open_source` checks the
parameters and opens the files (headers read, nothing else); its rows are read while they are
checked and written. `read_source` reads everything into memory (small inputs, tests).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from connectome_query.ingest.errors import IngestError
from connectome_query.ingest.memory import tables_source, to_tables
from connectome_query.ingest.readers.cect_modulatory import DESCRIPTIONS as MODULATORY_DESCRIPTIONS
from connectome_query.ingest.readers.cect_modulatory import MODULATORY_READERS
from connectome_query.ingest.readers.cect_published import PUBLISHED, published_readers
from connectome_query.ingest.readers.celegans import CELEGANS_SOURCES, read_varshney2011
from connectome_query.ingest.readers.codex import codex_source, is_codex_dir
from connectome_query.ingest.readers.files import check_encoding
from connectome_query.ingest.readers.neuprint import find_neuprint_files, neuprint_source
from connectome_query.ingest.readers.neuprint_bulk import bulk_export_source, is_bulk_export
from connectome_query.ingest.readers.run_dir import is_run_dir, run_dir_source
from connectome_query.ingest.readers.synapse_table import check_voxel_size, synapse_table_source
from connectome_query.ingest.tables import ConnectomeTables, Source

_PUBLISHED = published_readers()
BUILTIN: dict[str, Callable[[], ConnectomeTables]] = {
    "cook2019": _PUBLISHED["cook2019"], "varshney2011": read_varshney2011, **_PUBLISHED,
    **MODULATORY_READERS}
assert tuple(BUILTIN)[:2] == CELEGANS_SOURCES


def builtin_descriptions() -> dict[str, str]:
    """Built-in name -> what it is (for `connectome ingest --list`)."""
    described = {"varshney2011": "C. elegans hermaphrodite, WormAtlas / Varshney et al. 2011 "
                                 "(cect)"}
    described.update({name: p.description for name, p in PUBLISHED.items()})
    described.update(MODULATORY_DESCRIPTIONS)
    return described


def open_source(
    source: str,
    *,
    encoding: str = "utf-8",
    voxel_size: tuple[float, float, float] = (1.0, 1.0, 1.0),
    neurons: Path | None = None,
) -> Source:
    """What SOURCE names, ready to be read; IngestError when it names nothing readable,
    ParameterError for an unusable encoding or voxel size."""
    encoding = check_encoding(encoding)
    voxel_size = check_voxel_size(voxel_size)
    if source in BUILTIN:
        return tables_source(BUILTIN[source]())
    path = Path(source)
    if not path.exists():
        raise IngestError(
            path, "no such file or folder, and not a built-in dataset "
            f"(built-in: {', '.join(BUILTIN)})"
        )
    if path.is_dir():
        if is_run_dir(path):
            return run_dir_source(path)
        if is_codex_dir(path):
            return codex_source(path, encoding=encoding)
        if is_bulk_export(path):
            return bulk_export_source(path, encoding=encoding)
        pair = find_neuprint_files(path)
        if pair:
            return neuprint_source(*pair, encoding=encoding)
        raise IngestError(
            path, "folder holds none of: neurons + connections files (neuPrint style), "
            "traced-neurons + traced-total-connections (a neuPrint bulk export), a Codex "
            "connections table (pre_root_id, post_root_id, neuropil, syn_count), "
            "segments.parquet + synapses.parquet (a reconstruction run)"
        )
    if path.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise IngestError(path, "unsupported file type (expected .csv or .parquet)")
    if neurons is not None and not neurons.exists():
        raise IngestError(neurons, "file not found (--neurons)")
    return synapse_table_source(path, voxel_size=voxel_size, neurons_path=neurons,
                                encoding=encoding)


def read_source(
    source: str,
    *,
    encoding: str = "utf-8",
    voxel_size: tuple[float, float, float] = (1.0, 1.0, 1.0),
    neurons: Path | None = None,
) -> ConnectomeTables:
    """Read and check whatever SOURCE names, whole, into memory."""
    if source in BUILTIN:
        return BUILTIN[source]()
    return to_tables(open_source(source, encoding=encoding, voxel_size=voxel_size,
                                 neurons=neurons))
