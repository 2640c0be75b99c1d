"""Reading exports back with the tools users use (pandas, pyarrow, scipy), as edge dicts."""

from __future__ import annotations

import io
import json

import networkx as nx
import numpy as np
import pandas as pd
import pyarrow as pa
import scipy.io
import scipy.sparse as sp

Edges = dict[tuple[object, object], int]


def edges_of(graph: nx.Graph | nx.DiGraph) -> Edges:
    """Nonzero-or-listed entries of a networkx graph; undirected edges both ways."""
    out: Edges = {}
    for u, v, d in graph.edges(data=True):
        out[(u, v)] = int(d["weight"])
        if not graph.is_directed():
            out[(v, u)] = int(d["weight"])
    return out


def mtx_labels(data: bytes) -> list[str]:
    labels = []
    for line in data.decode().splitlines()[1:]:
        if not line.startswith("%"):
            break
        text = line[1:].strip()
        if text.startswith('"'):
            labels.append(json.loads(text))
        elif text.isdigit():
            labels.append(text)
    return labels


def read_back(fmt: str, data: bytes, by_type: bool = False) -> tuple[Edges, list | None]:
    """(entries, row labels or None for edge lists)."""
    buf = io.BytesIO(data)
    pre, post = ("type_pre", "type_post") if by_type else ("bodyId_pre", "bodyId_post")
    if fmt in ("csv", "parquet", "arrow"):
        if fmt == "csv":
            frame = pd.read_csv(buf, dtype={pre: str, post: str} if by_type else None)
        elif fmt == "parquet":
            frame = pd.read_parquet(buf)
        else:
            frame = pa.ipc.open_stream(buf).read_all().to_pandas()
        assert list(frame.columns) == [pre, post, "weight"]
        conv = str if by_type else int
        return ({(conv(a), conv(b)): int(w) for a, b, w in
                 zip(frame[pre], frame[post], frame["weight"], strict=True)}, None)
    if fmt == "npz":
        matrix = sp.load_npz(buf)
        assert isinstance(matrix, sp.csr_matrix | sp.csr_array)
        arrays = np.load(io.BytesIO(data))
        labels = list(arrays["row_types" if by_type else "row_ids"])
        assert list(arrays["col_types" if by_type else "col_ids"]) == labels
        assert matrix.has_sorted_indices
    else:
        matrix = sp.coo_array(scipy.io.mmread(buf))
        labels = mtx_labels(data)
    labels = [str(v) if by_type else int(v) for v in labels]
    assert matrix.shape == (len(labels), len(labels))
    coo = sp.coo_array(matrix)
    return ({(labels[r], labels[c]): int(w) for r, c, w in
             zip(coo.row, coo.col, coo.data, strict=True)}, labels)
