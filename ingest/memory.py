"""A dataset held in memory (`ConnectomeTables`) and a source read as one: built in code or read
whole for small inputs and tests. Both ways go through the same checks as files do."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from connectome_query.ingest.batches import connection_batches, neuron_batches, synapse_batches
from connectome_query.ingest.prepare import Prepared, prepare
from connectome_query.ingest.readers.canonical import (
    ConnectionColumns,
    FileStream,
    NeuronColumns,
    SynapseColumns,
    present,
)
from connectome_query.ingest.readers.files import FrameTable
from connectome_query.ingest.tables import (
    CONNECTION_SCHEMA,
    NEURON_SCHEMA,
    NEURON_TEXT,
    ConnectomeTables,
    Source,
)

_BATCH = 1_000_000


def tables_source(tables: ConnectomeTables) -> Source:
    """`tables` as a source: its frames are read (and checked) like files, named
    "SOURCE (neurons)" and so on in messages; every body must be in the neuron table."""
    name = tables.source
    neurons = FrameTable(f"{name} (neurons)", tables.neurons)
    neurons.require("bodyId")
    soma = ("somaX", "somaY", "somaZ")
    neuron_cols = NeuronColumns(
        body_id="bodyId", text=tuple((c, c) for c in NEURON_TEXT if neurons.has(c)),
        size=present(neurons, "size"), soma=soma if all(neurons.has(c) for c in soma) else None,
        counts=(("nmjSynapses", "nmjSynapses"),) if neurons.has("nmjSynapses") else ())
    conns = FrameTable(f"{name} (connections)", tables.connections)
    conns.require("bodyIdPre", "bodyIdPost", "weight")
    conn_cols = ConnectionColumns(pre="bodyIdPre", post="bodyIdPost", weight="weight",
                                  kind=present(conns, "kind"), roi_info=present(conns, "roiInfo"),
                                  published_weight=present(conns, "publishedWeight"))
    synapses = None
    if tables.synapses is not None and not tables.synapses.empty:
        syn = FrameTable(f"{name} (synapses)", tables.synapses)
        syn.require("synapseId", "bodyIdPre", "bodyIdPost", "x", "y", "z")
        synapses = FileStream(syn, SynapseColumns(
            pre="bodyIdPre", post="bodyIdPost", position=("x", "y", "z"), synapse_id="synapseId",
            size=present(syn, "size"), confidence=present(syn, "confidence"),
            compartment=present(syn, "postCompartment"), roi=present(syn, "roi")), {})
    return Source(name=name, neurons=FileStream(neurons, neuron_cols, {}),
                  connections=FileStream(conns, conn_cols, {}), synapses=synapses,
                  meta=dict(tables.meta), synapse_bodies="listed", modulatory=tables.modulatory)


def _frame(table: pa.Table) -> pd.DataFrame:
    """Arrow to pandas with text as Python objects (None where missing)."""
    columns = {}
    for field in table.schema:
        values = table.column(field.name)
        if pa.types.is_string(field.type):
            columns[field.name] = pd.Series(values.to_pylist(), dtype=object)
        else:
            columns[field.name] = values.to_pandas()
    return pd.DataFrame(columns)


def to_tables(source: Source) -> ConnectomeTables:
    """Check `source` and read it whole into memory."""
    prep = prepare(source)
    try:
        return _whole(prep)
    finally:
        prep.close()


def _whole(prep: Prepared) -> ConnectomeTables:
    source = prep.source
    neurons = pa.concat_tables(list(neuron_batches(prep, _BATCH))).select(NEURON_SCHEMA.names)
    chemical = [*connection_batches(prep, "chemical", _BATCH),
                *connection_batches(prep, "electrical", _BATCH)]
    if neurons.column("nmjSynapses").null_count == neurons.num_rows:
        neurons = neurons.drop(["nmjSynapses"])
    conns = pa.concat_tables(chemical) if chemical else CONNECTION_SCHEMA.empty_table()
    conns = conns.select(["bodyIdPre", "bodyIdPost", "weight", "kind", "roiInfo",
                          "publishedWeight"])
    if conns.column("publishedWeight").null_count == conns.num_rows:
        conns = conns.drop(["publishedWeight"])
    synapses = None
    if source.synapses is not None:
        synapses = _frame(pa.concat_tables(list(synapse_batches(prep, _BATCH))))
    meta = {k: v for k, v in prep.meta.items() if not k.startswith("chandelier")}
    return ConnectomeTables(source=source.name, neurons=_frame(neurons), connections=_frame(conns),
                            synapses=synapses, meta=meta)
