"""All file reading and writing of the reconstruction stage (TensorStore, Parquet, JSON, SWC).

Volumes are zarr v3 via TensorStore (axes z, y, x) and, for Neuroglancer, neuroglancer
precomputed (TensorStore axes x, y, z, channel). Every read validates what it gets and
raises `ReconstructError` naming the file and the field at fault.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tensorstore as ts

from connectome_query.reconstruct.errors import ReconstructError

CHUNK = (32, 128, 128)

SEGMENT_COLUMNS: dict[str, str] = {
    "segment_id": "int64",
    "size_voxels": "int64",
    "soma_x": "float64",
    "soma_y": "float64",
    "soma_z": "float64",
    "predicted_class": "string",
}
SYNAPSE_COLUMNS: dict[str, str] = {
    "synapse_id": "int64",
    "pre_segment_id": "int64",
    "post_segment_id": "int64",
    "x": "float64",
    "y": "float64",
    "z": "float64",
    "size_voxels": "int64",
    "confidence": "float64",
    "post_compartment": "string",
}


def _kv(path: Path) -> dict[str, Any]:
    return {"driver": "file", "path": str(Path(path).resolve())}


def create_zarr(path: Path, shape: Sequence[int], dtype: str,
                chunks: Sequence[int] | None = None,
                attributes: dict[str, Any] | None = None) -> ts.TensorStore:
    """Create (overwrite) a zarr v3 array with zstd-compressed chunks; axes z, y, x[, ...]."""
    shape = [int(s) for s in shape]
    if chunks is None:
        chunks = [min(c, s) for c, s in zip((1,) * (len(shape) - 3) + CHUNK, shape, strict=True)]
    names = (["c"] if len(shape) == 4 else []) + ["z", "y", "x"]
    spec = {
        "driver": "zarr3",
        "kvstore": _kv(path),
        "create": True,
        "delete_existing": True,
        "metadata": {
            "shape": shape,
            "data_type": dtype,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(chunks)}},
            "dimension_names": names,
            "codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                       {"name": "zstd", "configuration": {"level": 3}}],
            "attributes": attributes or {},
        },
    }
    return ts.open(spec).result()


def open_zarr(path: Path, what: str = "volume") -> ts.TensorStore:
    """Open an existing zarr v3 array, with a clear error when it is missing or broken."""
    path = Path(path)
    if not path.exists():
        raise ReconstructError(f"{what}: {path} does not exist")
    try:
        return ts.open({"driver": "zarr3", "kvstore": _kv(path), "open": True}).result()
    except Exception as e:
        raise ReconstructError(f"{what}: cannot open zarr v3 array {path}: {e}") from e


def read_block(store: ts.TensorStore, index: tuple[slice, ...] | slice, path: Path,
               what: str = "volume") -> np.ndarray:
    """Read part of an array; a corrupt or unreadable chunk becomes a ReconstructError."""
    try:
        return np.asarray(store[index].read().result())
    except Exception as e:
        raise ReconstructError(f"{what}: corrupt or unreadable chunk in {path}: {e}") from e


def write_zarr(path: Path, arr: np.ndarray, attributes: dict[str, Any] | None = None) -> None:
    """Write a whole in-memory array as zarr v3."""
    st = create_zarr(path, arr.shape, str(arr.dtype), attributes=attributes)
    st.write(arr).result()


def create_precomputed(path: Path, shape_zyx: Sequence[int], voxel_size_xyz: Sequence[float],
                       dtype: str = "uint64", kind: str = "segmentation") -> ts.TensorStore:
    """Create a neuroglancer precomputed volume; TensorStore axes are x, y, z, channel."""
    z, y, x = (int(s) for s in shape_zyx)
    enc = "compressed_segmentation" if kind == "segmentation" else "raw"
    spec = {
        "driver": "neuroglancer_precomputed",
        "kvstore": _kv(path),
        "create": True,
        "delete_existing": True,
        "multiscale_metadata": {"type": kind, "data_type": dtype, "num_channels": 1},
        "scale_metadata": {
            "size": [x, y, z],
            "resolution": [float(v) for v in voxel_size_xyz],
            "encoding": enc,
            "chunk_size": [min(64, x), min(64, y), min(32, z)],
        },
    }
    return ts.open(spec).result()


def write_precomputed_block(store: ts.TensorStore, z0: int, block_zyx: np.ndarray) -> None:
    """Write sections [z0, z0 + depth) of a (z, y, x) block into a precomputed volume."""
    z1 = z0 + block_zyx.shape[0]
    store[:, :, z0:z1, 0].write(np.ascontiguousarray(block_zyx.transpose(2, 1, 0))).result()


def write_json(path: Path, obj: dict[str, Any]) -> None:
    """Write pretty JSON."""
    Path(path).write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: Path, what: str) -> dict[str, Any]:
    """Read a JSON object, naming the file on failure."""
    path = Path(path)
    if not path.exists():
        raise ReconstructError(f"{what}: {path} does not exist")
    try:
        obj = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ReconstructError(f"{what}: {path} is not valid JSON: {e}") from e
    if not isinstance(obj, dict):
        raise ReconstructError(f"{what}: {path} must hold a JSON object")
    return obj


def write_table(path: Path, df: pd.DataFrame, columns: dict[str, str] | None = None) -> None:
    """Write a Parquet table, casting to the contract's column types when given."""
    if columns is not None:
        df = df.reindex(columns=list(columns)).astype(columns)
    df.to_parquet(path, index=False)


def read_table(path: Path, what: str, columns: dict[str, str] | None = None) -> pd.DataFrame:
    """Read a Parquet table and check the required columns are there."""
    path = Path(path)
    if not path.exists():
        raise ReconstructError(f"{what}: {path} does not exist")
    try:
        df = pd.read_parquet(path)
    except Exception as e:
        raise ReconstructError(f"{what}: {path} is not a readable Parquet file: {e}") from e
    for col in columns or {}:
        if col not in df.columns:
            raise ReconstructError(f"{what}: {path} lacks column {col!r}")
    return df


def write_swc(path: Path, node_ids: np.ndarray, types: np.ndarray, xyz: np.ndarray,
              radius: np.ndarray, parents: np.ndarray) -> None:
    """Write one SWC file (ids 1-based; parent -1 for roots; coordinates in nm)."""
    lines = ["# SWC written by connectome-query; units nm; types 1 soma 2 axon 3 dendrite"
             " 5 axon initial segment 0 unknown"]
    for i, t, (x, y, z), r, p in zip(node_ids, types, xyz, radius, parents, strict=True):
        lines.append(f"{int(i)} {int(t)} {x:.1f} {y:.1f} {z:.1f} {r:.1f} {int(p)}")
    Path(path).write_text("\n".join(lines) + "\n")


def save_model(path: Path, model: Any) -> None:
    """Pickle a trained model with joblib."""
    import joblib

    joblib.dump(model, path, compress=3)


def load_model(path: Path) -> Any:
    """Load a model saved by `save_model`, with a clear error for a wrong file."""
    import joblib

    path = Path(path)
    if not path.exists():
        raise ReconstructError(f"model: {path} does not exist")
    try:
        return joblib.load(path)
    except Exception as e:
        raise ReconstructError(f"model: {path} is not a saved boundary model: {e}") from e


def save_net(path: Path, net: Any) -> None:
    """Save affinity-network weights and metadata as one .npz file."""
    from connectome_query.reconstruct import affinity_net

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    savez: Any = np.savez_compressed  # numpy's stub types **kwargs as allow_pickle
    with open(path, "wb") as fh:
        savez(fh, **affinity_net.to_arrays(net))


def load_net(path: Path) -> Any:
    """Load weights saved by `save_net`, with a clear error for a missing or wrong file."""
    from connectome_query.reconstruct import affinity_net

    path = Path(path)
    if not path.exists():
        raise ReconstructError(f"affinity network: {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        return affinity_net.from_arrays(arrays)
    except Exception as e:
        raise ReconstructError(f"affinity network: {path} is not saved network weights: "
                               f"{e}") from e
