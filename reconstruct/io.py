"""All file reading and writing of the reconstruction stage (TensorStore, Parquet, JSON, SWC).

Volumes are zarr v3 via TensorStore (axes z, y, x) and, for Neuroglancer, neuroglancer
precomputed (TensorStore axes x, y, z, channel). Every read validates what it gets and
raises `ReconstructError` naming the file and the field at fault. The layouts of the EM and run
directories are in RUN_DIR.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tensorstore as ts

from connectome_query.reconstruct import synth
from connectome_query.reconstruct.errors import ReconstructError
from connectome_query.reconstruct.progress import Tick, no_progress
from connectome_query.schema.vocabulary import Compartment

CHUNK = (32, 128, 128)
CREATED_BY = "connectome-query"
SYNTH_SLAB = 32
"""Sections a synthetic volume is rendered and written at a time."""

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


_CODECS = [{"name": "bytes", "configuration": {"endian": "little"}},
           {"name": "zstd", "configuration": {"level": 3}}]


def create_zarr(path: Path, shape: Sequence[int], dtype: str,
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
        "kvstore": _kv(path),
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


def open_zarr(path: Path, what: str = "volume") -> ts.TensorStore:
    """Open an existing zarr v3 array, with a clear error when it is missing or broken."""
    path = Path(path)
    if not path.exists():
        raise ReconstructError(f"{what}: {path} does not exist")
    try:
        return ts.open({"driver": "zarr3", "kvstore": _kv(path), "open": True}).result()
    except Exception as e:
        raise ReconstructError(f"{what}: cannot open zarr v3 array {path}: {e}") from e


def read_block(store: ts.TensorStore, index: tuple[Any, ...] | slice, path: Path,
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
                       dtype: str = "uint64", kind: str = "segmentation",
                       chunk_zyx: Sequence[int] = (32, 64, 64)) -> ts.TensorStore:
    """Create a neuroglancer precomputed volume; TensorStore axes are x, y, z, channel."""
    z, y, x = (int(s) for s in shape_zyx)
    cz, cy, cx = (int(c) for c in chunk_zyx)
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

def read_volume_info(em_dir: Path) -> dict[str, Any]:
    """volume.json of an EM directory, validated."""
    em_dir = Path(em_dir)
    if not em_dir.is_dir():
        raise ReconstructError(f"EM directory {em_dir} does not exist")
    info = read_json(em_dir / "volume.json", "volume description")
    for key in ("voxel_size_nm", "shape_zyx"):
        if key not in info:
            raise ReconstructError(f"volume description: {em_dir / 'volume.json'} lacks {key!r}")
        v = info[key]
        if not (isinstance(v, list) and len(v) == 3 and all(
                isinstance(x, int | float) and x > 0 for x in v)):
            raise ReconstructError(f"volume description: {key!r} in {em_dir / 'volume.json'}"
                                   f" must be three positive numbers, got {v!r}")
    return info


def open_image(em_dir: Path, info: dict[str, Any]) -> ts.TensorStore:
    """The EM image (uint8, z, y, x), opened and checked against volume.json (not read)."""
    path = Path(em_dir) / "image.zarr"
    st = open_zarr(path, "EM image")
    dtype = str(st.dtype.numpy_dtype)
    if dtype != "uint8":
        raise ReconstructError(f"EM image: {path} has dtype {dtype}, expected uint8")
    if list(st.shape) != list(info["shape_zyx"]):
        raise ReconstructError(f"EM image: {path} has shape {list(st.shape)}, but volume.json "
                               f"field 'shape_zyx' says {info['shape_zyx']}")
    return st


def read_image(em_dir: Path, info: dict[str, Any]) -> np.ndarray:
    """The EM image (uint8, z, y, x), checked against volume.json, in memory."""
    st = open_image(em_dir, info)
    return read_block(st, (slice(None),) * 3, Path(em_dir) / "image.zarr", "EM image")


SKELETON_COLUMNS = {"segment_id": "", "node_id": "", "parent_id": "", "x": "", "y": "", "z": ""}
"""The truth skeleton table's required columns (one row a node; parent_id -1 for a root)."""


def read_truth_tables(em_dir: Path, shape: tuple[int, ...],
                      skeletons: bool = True) -> dict[str, Any] | None:
    """The ground truth of an EM directory if present: its tables, and its segmentation
    checked (shape, dtype) but not read. Without `skeletons`, the skeleton table (one row a
    node, the largest) is checked but not read, and left out."""
    tdir = Path(em_dir) / "truth"
    if not tdir.exists():
        return None
    path = tdir / "segmentation.zarr"
    st = open_zarr(path, "ground truth")
    if tuple(st.shape) != tuple(shape):
        raise ReconstructError(f"ground truth: {path} has shape {list(st.shape)}, which does "
                               f"not match the EM image shape {list(shape)}")
    if str(st.dtype.numpy_dtype) not in ("uint64", "uint32"):
        raise ReconstructError(f"ground truth: {path} has dtype {st.dtype.numpy_dtype}, "
                               f"expected uint64")
    tables = {
        "segments": read_table(tdir / "segments.parquet", "ground truth", SEGMENT_COLUMNS),
        "synapses": read_table(tdir / "synapses.parquet", "ground truth", SYNAPSE_COLUMNS),
    }
    if skeletons:
        tables["skeletons"] = read_table(tdir / "skeletons.parquet", "ground truth",
                                         SKELETON_COLUMNS)
    else:
        check_columns(tdir / "skeletons.parquet", "ground truth", SKELETON_COLUMNS)
    return tables


def check_columns(path: Path, what: str, columns: dict[str, str]) -> None:
    """`read_table`'s checks from the Parquet file's schema alone (no rows read)."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.exists():
        raise ReconstructError(f"{what}: {path} does not exist")
    try:
        names = set(pq.read_schema(path).names)
    except Exception as e:
        raise ReconstructError(f"{what}: {path} is not a readable Parquet file: {e}") from e
    for col in columns:
        if col not in names:
            raise ReconstructError(f"{what}: {path} lacks column {col!r}")


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


# --------------------------------------------------------------- writing a synthetic volume

def _synthetic_volume_json(cfg: synth.SynthConfig, plan: synth.Plan) -> dict[str, Any]:
    nz, ny, nx = cfg.shape_zyx
    vz, vy, vx = cfg.voxel_size_zyx
    return {"voxel_size_nm": [vx, vy, vz], "shape_zyx": [nz, ny, nx], "seed": cfg.seed,
            "preset": cfg.preset, "style": cfg.style, "source": "synthetic",
            "created_by": CREATED_BY,
            "missing_sections": sorted(plan.missing),
            "shifted_sections": {str(k): list(v) for k, v in sorted(plan.shifts.items())}}


def _write_truth_skeletons(out: Path, nodes: dict[str, np.ndarray]) -> None:
    """truth/skeletons.parquet and one SWC file per cell under truth/skeletons/."""
    sk = pd.DataFrame(nodes)
    write_table(out / "truth" / "skeletons.parquet", sk)
    for sid, g in sk.groupby("segment_id"):
        ids = {n: i + 1 for i, n in enumerate(g["node_id"])}
        write_swc(out / "truth" / "skeletons" / f"{sid}.swc", np.arange(1, len(g) + 1),
                  g["compartment"].to_numpy(), g[["x", "y", "z"]].to_numpy(),
                  g["radius"].to_numpy(), np.array([ids.get(int(p), -1) for p in g["parent_id"]]))


def write_synthetic_em(out_dir: Path, cfg: synth.SynthConfig,
                       tick: Tick = no_progress) -> dict[str, Any]:
    """Write a synthetic EM directory (image + truth) slab by slab; returns volume.json."""
    out = Path(out_dir)
    (out / "truth" / "skeletons").mkdir(parents=True, exist_ok=True)
    plan = synth.make_plan(cfg)
    nz, ny, nx = cfg.shape_zyx
    vz, vy, vx = cfg.voxel_size_zyx
    attrs = {"voxel_size_nm_xyz": [vx, vy, vz]}
    stores = {name: create_zarr(out / path, (nz, ny, nx), dtype, attributes=attrs)
              for name, path, dtype in (("image", "image.zarr", "uint8"),
                                        ("labels", "truth/segmentation.zarr", "uint64"),
                                        ("compartments", "truth/compartments.zarr", "uint8"),
                                        ("clefts", "truth/clefts.zarr", "uint64"))}
    labels_pc = create_precomputed(out / "truth" / "segmentation.precomputed", (nz, ny, nx),
                                   (vx, vy, vz))
    image_pc = create_precomputed(out / "image.precomputed", (nz, ny, nx), (vx, vy, vz),
                                  dtype="uint8", kind="image")
    n_lab = int(plan.stamp_label.max()) + 1 if len(plan.stamp_label) else 1
    sizes = np.zeros(n_lab, np.int64)
    stats = np.zeros((len(plan.synapses), 9))
    st_vox, inside = synth.stamp_voxels(plan)
    labels_at = np.zeros(len(plan.stamps), np.int64)
    for z0 in range(0, nz, SYNTH_SLAB):
        z1 = min(z0 + SYNTH_SLAB, nz)
        tick(f"synth sections {z0}-{z1}", z0 / nz)
        s = synth.render_slab(plan, z0, z1)
        for name, store in stores.items():
            store[z0:z1].write(getattr(s, name)).result()
        write_precomputed_block(labels_pc, z0, s.labels)
        write_precomputed_block(image_pc, z0, s.image)
        sizes += np.bincount(s.labels.ravel().astype(np.int64), minlength=n_lab)[:n_lab]
        stats += s.cleft_stats
        sel = inside & (st_vox[:, 0] >= z0) & (st_vox[:, 0] < z1)
        v = st_vox[sel]
        labels_at[sel] = s.labels[v[:, 0] - z0, v[:, 1], v[:, 2]].astype(np.int64)
    tick("truth tables and skeletons", 0.95)
    vol = write_synthetic_truth(out, plan, sizes, stats, labels_at)
    tick("done", 1.0)
    return vol


def write_synthetic_truth(out: Path, plan: synth.Plan, sizes: np.ndarray, stats: np.ndarray,
                          labels_at: np.ndarray) -> dict[str, Any]:
    """The truth tables, skeletons and volume.json of a rendered synthetic volume, from what
    rendering counted: voxels per cell (`sizes`), summed `Slab.cleft_stats`, and the cell
    at each stamp's voxel (`labels_at`, 0 outside); returns volume.json."""
    _write_truth_skeletons(out, synth.truth_skeleton_nodes(plan, labels_at))
    write_table(out / "truth" / "segments.parquet",
                pd.DataFrame(synth.segment_rows(plan, sizes), columns=list(SEGMENT_COLUMNS)),
                SEGMENT_COLUMNS)
    write_table(out / "truth" / "synapses.parquet",
                pd.DataFrame(synth.synapse_rows(plan, stats), columns=list(SYNAPSE_COLUMNS)),
                SYNAPSE_COLUMNS)
    vol = _synthetic_volume_json(plan.config, plan)
    write_json(out / "volume.json", vol)
    return vol
