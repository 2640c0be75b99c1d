"""Format writers for matrix exports: each takes sorted chunks of entries and writes a sink.

- csv / parquet / arrow (IPC stream): an edge list `bodyId_pre, bodyId_post, weight` (or
  `type_pre, type_post, weight` when collapsed by type), written batch by batch.
- npz: a scipy.sparse CSR matrix as `scipy.sparse.save_npz` writes it (`format`, `shape`,
  `indptr`, `indices`, `data`) plus `row_ids`/`col_ids` (or `row_types`/`col_types`) and,
  when asked, `neurons_<column>` metadata arrays. Column indices and weights are spooled to
  temporary files while rows arrive, so memory holds only the row pointer.
- mtx: Matrix Market coordinate (1-based), with the row/column labels as header comments.
  Entries are spooled to a temporary file because the header needs the entry count first.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import zipfile
from contextlib import suppress
from typing import IO, Any, BinaryIO, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from connectome_query.export.request import Chunk, MatrixRequest

PARQUET_ROW_GROUP = 1_000_000
COPY_BLOCK = 1 << 20


class MatrixWriter(Protocol):
    def write(self, chunk: Chunk) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


class WriteOnlySink:
    """The file surface that pyarrow and zipfile ask of a sink written strictly in order:
    `tell()` counts the bytes written; no seeking, no reading."""

    position = 0
    closed = False

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False

    def tell(self) -> int:
        return self.position

    def seek(self, *_: Any) -> int:
        raise io.UnsupportedOperation("not seekable")


class _Gate(WriteOnlySink):
    """A pass-through file that drops writes once shut (so an aborted writer's footer never
    reaches the sink and makes a partial file look whole)."""

    def __init__(self, sink: BinaryIO) -> None:
        self.sink = sink
        self.open = True

    def write(self, data: Any) -> int:
        n = memoryview(data).nbytes
        if self.open:
            self.sink.write(data)
        self.position += n
        return n

    def flush(self) -> None:
        if self.open:
            self.sink.flush()

    def close(self) -> None:
        self.closed = True


def edge_schema(by_type: bool) -> pa.Schema:
    label = pa.string() if by_type else pa.int64()
    prefix = "type" if by_type else "bodyId"
    return pa.schema([(f"{prefix}_pre", label), (f"{prefix}_post", label),
                      ("weight", pa.int64())])


def metadata_table(metadata: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(metadata, preserve_index=False)


class _TableWriter:
    """CSV, Parquet and Arrow IPC: one record batch per chunk (Parquet groups them)."""

    def __init__(self, fmt: str, sink: BinaryIO, labels: np.ndarray) -> None:
        self.labels = labels
        self.by_type = labels.dtype == object
        self.schema = edge_schema(self.by_type)
        self.gate = _Gate(sink)
        self.stream = pa.PythonFile(self.gate, mode="w")
        self.fmt = fmt
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = 0
        self.writer: Any
        if fmt == "csv":
            self.writer = pacsv.CSVWriter(self.stream, self.schema)
        elif fmt == "parquet":
            self.writer = pq.ParquetWriter(self.stream, self.schema, compression="zstd")
        else:
            self.writer = pa.ipc.new_stream(self.stream, self.schema)

    def write(self, chunk: Chunk) -> None:
        if not len(chunk.rows):
            return
        if self.by_type:
            pre = pa.array(self.labels[chunk.rows].tolist(), pa.string())
            post = pa.array(self.labels[chunk.cols].tolist(), pa.string())
        else:
            pre = pa.array(self.labels[chunk.rows])
            post = pa.array(self.labels[chunk.cols])
        batch = pa.RecordBatch.from_arrays([pre, post, pa.array(chunk.weights, pa.int64())],
                                           schema=self.schema)
        if self.fmt != "parquet":
            self.writer.write_batch(batch)
            return
        self.pending.append(batch)
        self.pending_rows += batch.num_rows
        if self.pending_rows >= PARQUET_ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            self.writer.write_table(pa.Table.from_batches(self.pending, self.schema),
                                    row_group_size=PARQUET_ROW_GROUP)
        self.pending, self.pending_rows = [], 0

    def close(self) -> None:
        if self.fmt == "parquet":
            self._flush()
        self.writer.close()
        self.stream.flush()

    def abort(self) -> None:
        self.gate.open = False
        with suppress(Exception):
            self.writer.close()


def _npy_header(fh: IO[bytes], dtype: np.dtype[Any], shape: tuple[int, ...]) -> None:
    np.lib.format.write_array_header_2_0(
        fh, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
             "shape": shape})


def _label_array(values: np.ndarray) -> np.ndarray:
    if values.dtype == object:
        return np.array(["" if v is None else str(v) for v in values], dtype=str)
    return np.asarray(values)


class _NpzWriter:
    """scipy.sparse CSR in an .npz, built row-ordered with column indices spooled to disk."""

    def __init__(self, sink: BinaryIO, labels: np.ndarray,
                 metadata: pd.DataFrame | None) -> None:
        self.sink = sink
        self.labels = labels
        self.metadata = metadata
        n = len(labels)
        self.n = n
        self.counts = np.zeros(n, dtype=np.int64)
        self.index_dtype = np.dtype(np.int32 if n < 2**31 else np.int64)
        self.indices = tempfile.TemporaryFile(prefix="export-indices-")  # noqa: SIM115
        self.data = tempfile.TemporaryFile(prefix="export-data-")  # noqa: SIM115
        self.nnz = 0
        self.last_row = -1

    def write(self, chunk: Chunk) -> None:
        if not len(chunk.rows):
            return
        if int(chunk.rows[0]) < self.last_row:
            raise ValueError("npz writer needs chunks in row order")
        self.last_row = int(chunk.rows[-1])
        self.counts += np.bincount(chunk.rows, minlength=self.n)
        self.indices.write(chunk.cols.astype(self.index_dtype).tobytes())
        self.data.write(chunk.weights.astype(np.int64).tobytes())
        self.nnz += len(chunk.rows)

    def _array(self, zf: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
        with zf.open(name + ".npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array(fh, np.asarray(array), allow_pickle=False)

    def _spooled(self, zf: zipfile.ZipFile, name: str, spool: Any, dtype: np.dtype[Any]) -> None:
        spool.seek(0)
        with zf.open(name + ".npy", "w", force_zip64=True) as fh:
            _npy_header(fh, dtype, (self.nnz,))
            shutil.copyfileobj(spool, fh, COPY_BLOCK)

    def close(self) -> None:
        by_type = self.labels.dtype == object
        indptr = np.concatenate([[0], np.cumsum(self.counts)]).astype(self.index_dtype)
        try:
            with zipfile.ZipFile(self.sink, "w", compression=zipfile.ZIP_STORED,
                                 allowZip64=True) as zf:
                self._array(zf, "format", np.array("csr"))
                self._array(zf, "shape", np.array([self.n, self.n], dtype=np.int64))
                self._array(zf, "indptr", indptr)
                self._spooled(zf, "indices", self.indices, self.index_dtype)
                self._spooled(zf, "data", self.data, np.dtype(np.int64))
                labels = _label_array(self.labels)
                prefix = "types" if by_type else "ids"
                self._array(zf, f"row_{prefix}", labels)
                self._array(zf, f"col_{prefix}", labels)
                if self.metadata is not None:
                    for col in self.metadata.columns:
                        self._array(zf, f"neurons_{col}",
                                    _label_array(self.metadata[col].to_numpy()))
        finally:
            self.abort()

    def abort(self) -> None:
        self.indices.close()
        self.data.close()


class _MtxWriter:
    """Matrix Market coordinate integer general, labels as comments, entries 1-based."""

    def __init__(self, sink: BinaryIO, labels: np.ndarray, req: MatrixRequest) -> None:
        self.sink = sink
        self.labels = labels
        self.req = req
        self.spool = tempfile.TemporaryFile(prefix="export-mtx-")  # noqa: SIM115
        self.stream = pa.PythonFile(self.spool, mode="w")
        schema = pa.schema([("i", pa.int64()), ("j", pa.int64()), ("w", pa.int64())])
        self.writer = pacsv.CSVWriter(self.stream, schema, write_options=pacsv.WriteOptions(
            include_header=False, delimiter=" ", quoting_style="none"))
        self.schema = schema
        self.nnz = 0

    def write(self, chunk: Chunk) -> None:
        if not len(chunk.rows):
            return
        self.writer.write_batch(pa.RecordBatch.from_arrays(
            [pa.array(chunk.rows + 1), pa.array(chunk.cols + 1), pa.array(chunk.weights)],
            schema=self.schema))
        self.nnz += len(chunk.rows)

    def close(self) -> None:
        self.writer.close()
        self.stream.flush()
        by_type = self.labels.dtype == object
        n = len(self.labels)
        req = self.req
        head = [
            "%%MatrixMarket matrix coordinate integer general",
            f"% connectome-query export: dataset={req.dataset} version={req.key} "
            f"synapseType={req.synapse_type} "
            f"level={req.level} minWeight={req.min_weight}",
            "% rows = presynaptic, columns = postsynaptic; labels "
            f"({'type, JSON' if by_type else 'bodyId'}) of rows and columns in order, one per "
            "line:",
        ]
        try:
            self.sink.write(("\n".join(head) + "\n").encode())
            step = 50_000
            for start in range(0, n, step):
                part = self.labels[start:start + step]
                text = (json.dumps(str(v)) for v in part) if by_type else (str(int(v))
                                                                            for v in part)
                self.sink.write(("".join(f"% {t}\n" for t in text)).encode())
            self.sink.write(f"{n} {n} {self.nnz}\n".encode())
            self.spool.seek(0)
            shutil.copyfileobj(self.spool, self.sink, COPY_BLOCK)
        finally:
            self.spool.close()

    def abort(self) -> None:
        with suppress(Exception):
            self.writer.close()
        self.spool.close()


def open_writer(req: MatrixRequest, sink: BinaryIO, labels: np.ndarray,
                metadata: pd.DataFrame | None = None) -> MatrixWriter:
    """A writer for `req.format`; `labels` are bodyIds (int64) or type names (object)."""
    if req.format == "npz":
        return _NpzWriter(sink, labels, metadata)
    if req.format == "mtx":
        return _MtxWriter(sink, labels, req)
    return _TableWriter(req.format, sink, labels)


def write_metadata(metadata: pd.DataFrame, fmt: str, sink: BinaryIO) -> None:
    """The neuron table in a table format (csv, parquet, arrow); npz/mtx get parquet's sibling
    csv since they have no table form."""
    table = metadata_table(metadata)
    stream = pa.PythonFile(sink, mode="w")
    if fmt == "parquet":
        pq.write_table(table, stream, compression="zstd")
    elif fmt == "arrow":
        with pa.ipc.new_stream(stream, table.schema) as w:
            w.write_table(table)
    else:
        pacsv.write_csv(table, stream)
    stream.flush()
