"""neuPrint-style bulk CSV (or Parquet): a neurons file and a connections file.

neurons: `bodyId` (required), optional `type`, `instance`, `status`, `cellClass`,
`neurotransmitter` (or `predictedNt`), `size`, and a soma as `somaLocation` ("[x, y, z]") or
`somaX`, `somaY`, `somaZ`.
connections: `bodyId_pre`, `bodyId_post`, `weight` (required), optional `roiInfo` (JSON text
`{"ROI": {"pre": n, "post": m}}`) and `kind` (`chemical`, the default, or `electrical`; gap
junctions listed once per direction are stored once per unordered pair).
"""

from __future__ import annotations

from pathlib import Path

from connectome_query.ingest.readers.canonical import (
    ConnectionColumns,
    FileStream,
    NeuronColumns,
    present,
    text_columns,
)
from connectome_query.ingest.readers.files import open_table
from connectome_query.ingest.tables import Source

NEURON_FILES = ("neurons.csv", "neurons.parquet", "Neuprint_Neurons.csv")
CONNECTION_FILES = ("connections.csv", "connections.parquet", "Neuprint_Neuron_Connections.csv")
NEURON_TEXT_COLUMNS = (("type", ("type",)), ("instance", ("instance",)), ("status", ("status",)),
                       ("cellClass", ("cellClass",)),
                       ("neurotransmitter", ("neurotransmitter", "predictedNt")))
SOMA = ("somaX", "somaY", "somaZ")


def find_neuprint_files(directory: Path) -> tuple[Path, Path] | None:
    """The (neurons, connections) files in a folder, or None when it holds no such pair."""
    neurons = next((directory / n for n in NEURON_FILES if (directory / n).exists()), None)
    conns = next((directory / n for n in CONNECTION_FILES if (directory / n).exists()), None)
    return (neurons, conns) if neurons and conns else None


def neuron_stream(path: Path, *, encoding: str = "utf-8") -> FileStream:
    """A neuPrint-style neurons file, checked as it is read."""
    file = open_table(path, encoding=encoding)
    file.require("bodyId")
    soma: str | tuple[str, str, str] | None = (
        SOMA if all(file.has(c) for c in SOMA) else present(file, "somaLocation"))
    columns = NeuronColumns(body_id="bodyId", text=text_columns(file, NEURON_TEXT_COLUMNS),
                            size=present(file, "size"), soma=soma)
    return FileStream(file, columns, {"bodyId": "bodyId"})


def connection_stream(path: Path, *, encoding: str = "utf-8") -> FileStream:
    """A neuPrint-style connections file, checked as it is read."""
    file = open_table(path, encoding=encoding)
    file.require("bodyId_pre", "bodyId_post", "weight")
    columns = ConnectionColumns(pre="bodyId_pre", post="bodyId_post", weight="weight",
                                kind=present(file, "kind"), roi_info=present(file, "roiInfo"))
    return FileStream(file, columns, {"bodyIdPre": "bodyId_pre", "bodyIdPost": "bodyId_post"})


def neuprint_source(neurons_path: Path, connections_path: Path, *,
                    encoding: str = "utf-8") -> Source:
    """A neurons file and a connections file as a source."""
    return Source(
        name=str(connections_path.parent),
        neurons=neuron_stream(neurons_path, encoding=encoding),
        connections=connection_stream(connections_path, encoding=encoding),
        meta={"description": f"neuPrint-style tables from {connections_path.parent}"},
    )
