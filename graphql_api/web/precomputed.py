"""Neuroglancer's precomputed formats for what a run directory keeps as tables: skeletons (from
SWC, nm) and synapses (an annotation layer of points, with relationships to the pre- and
postsynaptic segments, one spatial chunk). Pure functions of arrays; the routes are in `volumes`.

Formats: neuroglancer/src/datasource/precomputed/{skeletons,annotations}.md.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SKELETON_INFO: dict[str, Any] = {
    "@type": "neuroglancer_skeletons",
    "transform": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0],
    "vertex_attributes": [{"id": "compartment", "data_type": "float32", "num_components": 1}],
}
"""Vertices in nm (identity transform); one attribute, the SWC node type."""


def read_swc(path: Path) -> np.ndarray:
    """(n, 7) float64 rows `id, type, x, y, z, radius, parent` of an SWC file."""
    rows = np.loadtxt(path, comments="#", ndmin=2)
    if rows.size and rows.shape[1] != 7:
        raise ValueError(f"{path}: expected 7 columns per SWC row, found {rows.shape[1]}")
    return rows.reshape(-1, 7)


def encode_skeleton(swc: np.ndarray) -> bytes:
    """The precomputed skeleton of SWC rows: vertex count, edge count, positions (float32 nm),
    edges (uint32 child, parent index), then the compartment attribute (float32)."""
    ids = swc[:, 0].astype(np.int64)
    index = {int(i): k for k, i in enumerate(ids)}
    edges = [(k, index[int(p)]) for k, p in enumerate(swc[:, 6]) if int(p) in index]
    out = struct.pack("<II", len(ids), len(edges))
    out += np.ascontiguousarray(swc[:, 2:5], dtype="<f4").tobytes()
    out += np.asarray(edges, dtype="<u4").reshape(-1, 2).tobytes()
    out += swc[:, 1].astype("<f4").tobytes()
    return out


def decode_skeleton(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(positions (n, 3), edges (m, 2), compartment (n,)) of `encode_skeleton`'s bytes."""
    nv, ne = struct.unpack_from("<II", data)
    pos = np.frombuffer(data, "<f4", nv * 3, 8).reshape(nv, 3)
    edges = np.frombuffer(data, "<u4", ne * 2, 8 + 12 * nv).reshape(ne, 2)
    attr = np.frombuffer(data, "<f4", nv, 8 + 12 * nv + 8 * ne)
    return pos, edges, attr


RELATIONSHIPS = (("pre_segment", "pre_segment_id"), ("post_segment", "post_segment_id"))


def annotation_info(synapses: pd.DataFrame, extent_nm: Sequence[float]) -> dict[str, Any]:
    """The annotation layer's info: points in nm, a confidence property, relationships to both
    segments, lookup by id, and one spatial chunk over the volume holding every synapse."""
    upper = [float(e) for e in extent_nm]
    return {
        "@type": "neuroglancer_annotations_v1",
        "dimensions": {axis: [1e-9, "m"] for axis in "xyz"},
        "lower_bound": [0.0, 0.0, 0.0],
        "upper_bound": upper,
        "annotation_type": "POINT",
        "properties": [{"id": "confidence", "type": "float32"}],
        "relationships": [{"id": rel, "key": rel} for rel, _ in RELATIONSHIPS],
        "by_id": {"key": "by_id"},
        "spatial": [{"key": "spatial0", "grid_shape": [1, 1, 1], "chunk_size": upper,
                     "limit": max(1, len(synapses))}],
    }


def _records(synapses: pd.DataFrame) -> bytes:
    rec = np.zeros(len(synapses), dtype=[("p", "<f4", 3), ("confidence", "<f4")])
    rec["p"] = synapses[["x", "y", "z"]].to_numpy(np.float32)
    conf = synapses["confidence"] if "confidence" in synapses else np.ones(len(synapses))
    rec["confidence"] = np.asarray(conf, np.float32)
    return rec.tobytes()


def encode_annotations(synapses: pd.DataFrame) -> bytes:
    """Several annotations (a spatial chunk or a relationship index): count, records, ids."""
    ids = synapses["synapse_id"].to_numpy(np.int64).astype("<u8")
    return struct.pack("<Q", len(synapses)) + _records(synapses) + ids.tobytes()


def encode_annotation(row: pd.DataFrame) -> bytes:
    """One annotation by id: its record, then per relationship a count and the segment ids."""
    out = _records(row)
    for _, column in RELATIONSHIPS:
        out += struct.pack("<I", 1) + struct.pack("<Q", int(row[column].iloc[0]))
    return out
