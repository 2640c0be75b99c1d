"""All file reading and writing of the reconstruction stage (TensorStore, Parquet, JSON, SWC).

Volumes are zarr v3 via TensorStore (axes z, y, x) and, for Neuroglancer, neuroglancer
precomputed (TensorStore axes x, y, z, channel). Every read validates what it gets and
raises `ReconstructError` naming the file and the field at fault. The layouts of the EM and run
directories are in RUN_DIR.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tensorstore as ts

from connectome_query.reconstruct import location
from connectome_query.reconstruct.errors import ReconstructError
from connectome_query.reconstruct.location import Where
from connectome_query.schema.vocabulary import Compartment

CHUNK = (32, 128, 128)
CREATED_BY = "connectome-query"

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


_CODECS = [{"name": "bytes", "configuration": {"endian": "little"}},
           {"name": "zstd", "configuration": {"level": 3}}]


def create_zarr(path: Where, shape: Sequence[int], dtype: str,
                chunks: Sequence[int] | None = None,
                attributes: dict[str, Any] | None = None,
                shards: Sequence[int] | None = None,
                delete_existing: bool = True) -> ts.TensorStore:
    """Create a zarr v3 array with zstd-compressed chunks; axes z, y, x[, ...]. With
    `shards`, chunks are grouped into shards of that shape (each a multiple of `chunks`):
    one file per shard, read chunk by chunk. Without `delete_existing`, an existing array
    of the same metadata is opened as it is (a resumed run)."""
    shape = [int(s) for s in shape]
    if chunks is None:
        chunks = [min(c, s) for c, s in zip((1,) * (len(shape) - 3) + CHUNK, shape, strict=True)]
    names = (["c"] if len(shape) == 4 else []) + ["z", "y", "x"]
    codecs: list[dict[str, Any]] = _CODECS
    grid = list(chunks)
    if shards is not None:
        grid = [int(s) for s in shards]
        codecs = [{"name": "sharding_indexed", "configuration": {
            "chunk_shape": [int(c) for c in chunks], "codecs": _CODECS,
            "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                             {"name": "crc32c"}]}}]
    spec = {
        "driver": "zarr3",
        "kvstore": location.kvstore(path),
        "metadata": {
            "shape": shape,
            "data_type": dtype,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": grid}},
            "dimension_names": names,
            "codecs": codecs,
            "attributes": attributes or {},
        },
    }
    if delete_existing:
        return ts.open({**spec, "create": True, "delete_existing": True}).result()
    return ts.open({**spec, "open": True, "create": True}).result()


def open_zarr(path: Where, what: str = "volume") -> ts.TensorStore:
    """Open an existing zarr v3 array (any location), with a clear error when it is missing
    or broken."""
    path = location.parse(path)
    meta = location.join(path, "zarr.json") if location.is_remote(path) else path
    if not location.exists(meta, what):
        raise ReconstructError(f"{what}: {path} does not exist")
    try:
        return ts.open({"driver": "zarr3", "kvstore": location.kvstore(path),
                        "open": True}).result()
    except Exception as e:
        raise ReconstructError(f"{what}: cannot open zarr v3 array {path}: {e}") from e


def open_precomputed(path: Where, what: str = "volume") -> ts.TensorStore:
    """Open a single-channel neuroglancer precomputed volume (its finest scale) as an array
    of axes z, y, x starting at 0, as `open_zarr` gives; a clear error otherwise."""
    path = location.parse(path)
    try:
        st = ts.open({"driver": "neuroglancer_precomputed", "kvstore": location.kvstore(path),
                      "open": True, "scale_index": 0}).result()
    except Exception as e:
        raise ReconstructError(f"{what}: cannot open neuroglancer precomputed volume "
                               f"{path}: {e}") from e
    if st.shape[3] != 1:
        raise ReconstructError(f"{what}: {path} has {st.shape[3]} channels, expected 1")
    return st[ts.d["channel"][0]].T.translate_to[0, 0, 0]


def open_array(path: Where, what: str = "volume") -> ts.TensorStore:
    """A zarr v3 array or a neuroglancer precomputed volume (told by its metadata file:
    `zarr.json` or `info`), axes z, y, x[, ...]."""
    path = location.parse(path)
    if location.exists(location.join(path, "info"), what) and not location.exists(
            location.join(path, "zarr.json"), what):
        return open_precomputed(path, what)
    return open_zarr(path, what)


def read_block(store: ts.TensorStore, index: tuple[Any, ...] | slice, path: Where,
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


def create_precomputed(path: Where, shape_zyx: Sequence[int], voxel_size_xyz: Sequence[float],
                       dtype: str = "uint64", kind: str = "segmentation",
                       chunk_zyx: Sequence[int] = (32, 64, 64)) -> ts.TensorStore:
    """Create a neuroglancer precomputed volume; TensorStore axes are x, y, z, channel."""
    z, y, x = (int(s) for s in shape_zyx)
    cz, cy, cx = (int(c) for c in chunk_zyx)
    enc = "compressed_segmentation" if kind == "segmentation" else "raw"
    spec = {
        "driver": "neuroglancer_precomputed",
        "kvstore": location.kvstore(path),
        "create": True,
        "delete_existing": True,
        "multiscale_metadata": {"type": kind, "data_type": dtype, "num_channels": 1},
        "scale_metadata": {
            "size": [x, y, z],
            "resolution": [float(v) for v in voxel_size_xyz],
            "encoding": enc,
            "chunk_size": [min(cx, x), min(cy, y), min(cz, z)],
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


def read_json(path: Where, what: str) -> dict[str, Any]:
    """Read a JSON object (any location), naming the file on failure."""
    return _json_object(_read_existing(path, what), path, what)


def _json_object(data: bytes, path: Where, what: str) -> dict[str, Any]:
    """The JSON object in `data` (read from `path`), naming the file on failure."""
    try:
        obj = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ReconstructError(f"{what}: {path} is not valid JSON: {e}") from e
    if not isinstance(obj, dict):
        raise ReconstructError(f"{what}: {path} must hold a JSON object")
    return obj


def write_table(path: Path, df: pd.DataFrame, columns: dict[str, str] | None = None) -> None:
    """Write a Parquet table, casting to the contract's column types when given."""
    if columns is not None:
        df = df.reindex(columns=list(columns)).astype(columns)
    df.to_parquet(path, index=False)


def read_table(path: Where, what: str, columns: dict[str, str] | None = None) -> pd.DataFrame:
    """Read a Parquet table (any location) and check the required columns are there."""
    source = parquet_source(path, what)
    try:
        df = pd.read_parquet(source)
    except Exception as e:
        raise ReconstructError(f"{what}: {path} is not a readable Parquet file: {e}") from e
    _require_columns(set(df.columns), path, what, columns or {})
    return df


def _read_existing(path: Where, what: str) -> bytes:
    """The bytes of a file or object at any location; an error naming it when there is none."""
    data = location.read_bytes(path, what)
    if data is None:
        raise ReconstructError(f"{what}: {location.parse(path)} does not exist")
    return data


def _require_columns(names: set[str], path: Where, what: str, columns: dict[str, str]) -> None:
    for col in columns:
        if col not in names:
            raise ReconstructError(f"{what}: {path} lacks column {col!r}")


def write_swc(path: Path, node_ids: np.ndarray, compartments: np.ndarray, xyz: np.ndarray,
              radius: np.ndarray, parents: np.ndarray) -> None:
    """Write one SWC file (ids 1-based; parent -1 for roots; coordinates in nm); each
    node's compartment code becomes its SWC structure type."""
    lines = ["# SWC written by connectome-query; units nm; types 1 soma 2 axon 3 dendrite"
             " 5 axon initial segment 0 unknown"]
    for i, c, (x, y, z), r, p in zip(node_ids, compartments, xyz, radius, parents,
                                     strict=True):
        t = Compartment(int(c)).swc_type
        lines.append(f"{int(i)} {t} {x:.1f} {y:.1f} {z:.1f} {r:.1f} {int(p)}")
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


def _save_weights(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Network weights and metadata as one compressed .npz file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    savez: Any = np.savez_compressed  # numpy's stub types **kwargs as allow_pickle
    with open(path, "wb") as fh:
        savez(fh, **arrays)


def _load_weights(path: Path, what: str, kind: str,
                  parse: Callable[[dict[str, np.ndarray]], Any]) -> Any:
    """Weights saved by `_save_weights`, parsed; a clear error for a missing or wrong file."""
    path = Path(path)
    if not path.exists():
        raise ReconstructError(f"{what}: {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        return parse(arrays)
    except Exception as e:
        raise ReconstructError(f"{what}: {path} is not saved {kind}: {e}") from e


def save_net(path: Path, net: Any) -> None:
    """Save affinity-network weights and metadata as one .npz file."""
    from connectome_query.reconstruct import affinity_net

    _save_weights(path, affinity_net.to_arrays(net))


def load_net(path: Path) -> Any:
    """Load weights saved by `save_net`, with a clear error for a missing or wrong file."""
    from connectome_query.reconstruct import affinity_net

    return _load_weights(path, "affinity network", "network weights",
                         affinity_net.from_arrays)


def save_ffn(path: Path, net: Any) -> None:
    """Save flood-filling network weights and metadata as one .npz file."""
    from connectome_query.reconstruct.ffn import model

    _save_weights(path, model.to_arrays(net))


def load_ffn(path: Path) -> Any:
    """Load weights saved by `save_ffn`, with a clear error for a missing or wrong file."""
    from connectome_query.reconstruct.ffn import model

    return _load_weights(path, "flood-filling network", "FFN weights", model.from_arrays)


def save_adapter(path: Path, adapter: Any) -> None:
    """Save adapter weights (`reconstruct/adapt`) and metadata as one .npz file."""
    from connectome_query.reconstruct.adapt import model

    _save_weights(path, model.to_arrays(adapter))


def load_adapter(path: Path) -> Any:
    """Load weights saved by `save_adapter`, with a clear error for a missing or wrong file."""
    from connectome_query.reconstruct.adapt import model

    return _load_weights(path, "adapter", "adapter weights", model.from_arrays)


def save_restorer(path: Path, restorer: Any) -> None:
    """Save restorer weights (`reconstruct/adapt/restore`) and metadata as one .npz file."""
    from connectome_query.reconstruct.adapt import restore

    _save_weights(path, restore.to_arrays(restorer))


def load_restorer(path: Path) -> Any:
    """Load weights saved by `save_restorer`, with a clear error for a missing or wrong file."""
    from connectome_query.reconstruct.adapt import restore

    return _load_weights(path, "restorer", "restorer weights", restore.from_arrays)


# ------------------------------------------------------------------------ the EM directory

def read_volume_info(em_dir: Where) -> dict[str, Any]:
    """volume.json of an EM directory (any location), validated. A neuroglancer precomputed
    volume with no volume.json is an EM directory too: its `info` gives the voxel size and
    shape of its finest scale, and it is the image."""
    em = location.parse(em_dir)
    if not location.is_remote(em) and not Path(em).is_dir():
        raise ReconstructError(f"EM directory {em} does not exist")
    vj = location.join(em, "volume.json")
    data = location.read_bytes(vj, "volume description")  # read once (an object: one fetch)
    if data is None:
        if location.exists(location.join(em, "info"), "volume description"):
            return _precomputed_volume_info(em)
        if location.is_remote(em):
            raise ReconstructError(f"EM directory {em} has no volume.json (nor a neuroglancer "
                                   f"precomputed info): no such bucket or path")
        raise ReconstructError(f"volume description: {vj} does not exist")
    info = _json_object(data, vj, "volume description")
    for key in ("voxel_size_nm", "shape_zyx"):
        if key not in info:
            raise ReconstructError(f"volume description: {vj} lacks {key!r}")
        v = info[key]
        if not (isinstance(v, list) and len(v) == 3 and all(
                isinstance(x, int | float) and x > 0 for x in v)):
            raise ReconstructError(f"volume description: {key!r} in {vj}"
                                   f" must be three positive numbers, got {v!r}")
    if not isinstance(info.get("image", ""), str):
        raise ReconstructError(f"volume description: 'image' in {vj} must be a path inside "
                               f"the EM directory, got {info['image']!r}")
    return info


def _precomputed_volume_info(em: Where) -> dict[str, Any]:
    """volume.json's fields for a bare precomputed volume (its finest scale)."""
    meta = read_json(location.join(em, "info"), "neuroglancer precomputed info")
    try:
        scale = meta["scales"][0]
        vx, vy, vz = (float(v) for v in scale["resolution"])
        x, y, z = (int(v) for v in scale["size"])
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise ReconstructError(f"neuroglancer precomputed info: {location.join(em, 'info')} "
                               f"lacks a first scale's resolution and size: {e}") from e
    return {"voxel_size_nm": [vx, vy, vz], "shape_zyx": [z, y, x], "image": "",
            "source": "neuroglancer precomputed"}


def image_name(info: dict[str, Any]) -> str:
    """The EM image's path inside its EM directory: volume.json's `image` (a zarr v3 array or
    a neuroglancer precomputed volume; "" for the directory itself), default `image.zarr`."""
    return str(info.get("image", "image.zarr"))


def image_location(em_dir: Where, info: dict[str, Any]) -> Where:
    """Where the EM image of an EM directory is (`image_name`)."""
    return location.join(em_dir, image_name(info))


def open_image(em_dir: Where, info: dict[str, Any]) -> ts.TensorStore:
    """The EM image (uint8, z, y, x), opened and checked against volume.json (not read)."""
    path = image_location(em_dir, info)
    st = open_array(path, "EM image")
    dtype = str(st.dtype.numpy_dtype)
    if dtype != "uint8":
        raise ReconstructError(f"EM image: {path} has dtype {dtype}, expected uint8")
    if list(st.shape) != list(info["shape_zyx"]):
        raise ReconstructError(f"EM image: {path} has shape {list(st.shape)}, but volume.json "
                               f"field 'shape_zyx' says {info['shape_zyx']}")
    return st


def read_image(em_dir: Where, info: dict[str, Any]) -> np.ndarray:
    """The EM image (uint8, z, y, x), checked against volume.json, in memory."""
    st = open_image(em_dir, info)
    return read_block(st, (slice(None),) * 3, image_location(em_dir, info), "EM image")


SKELETON_COLUMNS = {"segment_id": "", "node_id": "", "parent_id": "", "x": "", "y": "", "z": ""}
"""The truth skeleton table's required columns (one row a node; parent_id -1 for a root)."""
_TRUTH_FILES = ("segmentation.zarr/zarr.json", "segments.parquet", "synapses.parquet",
                "skeletons.parquet")


def _has_truth(tdir: Where) -> bool:
    """Whether an EM directory has a truth/ (in object storage: any of its files)."""
    if not location.is_remote(tdir):
        return Path(tdir).exists()
    return any(location.exists(location.join(tdir, f), "ground truth") for f in _TRUTH_FILES)


def read_truth_tables(em_dir: Where, shape: tuple[int, ...],
                      skeletons: bool = True) -> dict[str, Any] | None:
    """The ground truth of an EM directory if present: its tables, and its segmentation
    checked (shape, dtype) but not read. Without `skeletons`, the skeleton table (one row a
    node, the largest) is checked but not read, and left out."""
    tdir = location.join(em_dir, "truth")
    if not _has_truth(tdir):
        return None
    path = location.join(tdir, "segmentation.zarr")
    st = open_zarr(path, "ground truth")
    if tuple(st.shape) != tuple(shape):
        raise ReconstructError(f"ground truth: {path} has shape {list(st.shape)}, which does "
                               f"not match the EM image shape {list(shape)}")
    if str(st.dtype.numpy_dtype) not in ("uint64", "uint32"):
        raise ReconstructError(f"ground truth: {path} has dtype {st.dtype.numpy_dtype}, "
                               f"expected uint64")
    tables = {
        "segments": read_table(location.join(tdir, "segments.parquet"), "ground truth",
                               SEGMENT_COLUMNS),
        "synapses": read_table(location.join(tdir, "synapses.parquet"), "ground truth",
                               SYNAPSE_COLUMNS),
    }
    skeleton_table = location.join(tdir, "skeletons.parquet")
    if skeletons:
        tables["skeletons"] = read_table(skeleton_table, "ground truth", SKELETON_COLUMNS)
    else:
        check_columns(skeleton_table, "ground truth", SKELETON_COLUMNS)
    return tables


def parquet_source(path: Where, what: str) -> Path | BytesIO:
    """What pyarrow opens for a Parquet file at any location: a local file as it is (read a
    row group at a time), an object in storage fetched whole."""
    where = location.parse(path)
    if isinstance(where, Path):
        if not where.is_file():
            raise ReconstructError(f"{what}: {where} does not exist")
        return where
    return BytesIO(_read_existing(where, what))


def parquet_columns(path: Where, what: str) -> set[str]:
    """The column names of a Parquet file (its schema alone; no rows read)."""
    import pyarrow.parquet as pq

    try:
        return set(pq.read_schema(parquet_source(path, what)).names)
    except ReconstructError:
        raise
    except Exception as e:
        raise ReconstructError(f"{what}: {path} is not a readable Parquet file: {e}") from e


def check_columns(path: Where, what: str, columns: dict[str, str]) -> set[str]:
    """`read_table`'s checks from the Parquet file's schema alone (no rows read); the file's
    column names."""
    names = parquet_columns(path, what)
    _require_columns(names, path, what, columns)
    return names


def read_truth(em_dir: Path, shape: tuple[int, ...]) -> dict[str, Any] | None:
    """Ground truth of an EM directory if present (segmentation in memory, tables), checked."""
    tables = read_truth_tables(em_dir, shape)
    if tables is None:
        return None
    path = Path(em_dir) / "truth" / "segmentation.zarr"
    seg = read_block(open_zarr(path, "ground truth"), (slice(None),) * 3, path, "ground truth")
    return {"segmentation": seg.astype(np.uint64), **tables}


def read_truth_clefts(em_dir: Path) -> np.ndarray:
    """The ground-truth clefts of an EM directory (synapse id per voxel, 0 elsewhere)."""
    path = Path(em_dir) / "truth" / "clefts.zarr"
    return read_block(open_zarr(path, "clefts"), (slice(None),) * 3, path, "clefts")


def open_affinities(path: Path, shape: tuple[int, ...]) -> Any:
    """Affinities made elsewhere, opened and checked: zarr (3, z, y, x), waterz layout,
    float in [0, 1] or uint8 (scaled by 1/255)."""
    st = open_zarr(path, "affinities")
    if tuple(st.shape) != (3, *shape):
        raise ReconstructError(f"affinities: {path} has shape {list(st.shape)}, expected "
                               f"{[3, *shape]} (channels z, y, x affinity to the -1 neighbour)")
    dtype = np.dtype(st.dtype.numpy_dtype)
    if dtype != np.uint8 and dtype.kind != "f":
        raise ReconstructError(f"affinities: {path} has dtype {dtype}, expected float32 "
                               f"or uint8")
    return st


def read_affinity_block(st: Any, path: Path, z0: int, z1: int) -> np.ndarray:
    """Sections z0..z1 of opened affinities as float32 in [0, 1]."""
    a = read_block(st, (slice(None), slice(z0, z1)), path, "affinities")
    if a.dtype == np.uint8:
        return np.multiply(a, np.float32(1 / 255), dtype=np.float32)
    a = a.astype(np.float32, copy=False)
    return np.clip(a, 0.0, 1.0, out=a)  # in place: a slab's copy less in memory


def read_affinities(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """All of the affinities made elsewhere (see `open_affinities`)."""
    return read_affinity_block(open_affinities(path, shape), path, 0, int(shape[0]))
