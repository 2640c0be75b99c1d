"""Segment meshes in Neuroglancer's legacy single-resolution mesh format, made lazily with zmesh
(marching cubes over every label at once) from the finest scale of the segmentation's pyramid
that holds at most `MAX_VOXELS` (so a large volume gets coarser meshes, never none) and kept in
memory per segmentation file set:

    mesh/info          {"@type": "neuroglancer_legacy_mesh"}
    mesh/{id}:0        {"fragments": ["{id}:0:{id}"]}
    mesh/{id}:0:{id}   uint32 vertex count, float32 xyz vertices (nm), uint32 triangle indices

The labels get a one-voxel background border (closed surfaces where segments touch the volume's
faces) and vertices are shifted so a segment's mesh spans exactly its voxels: voxel i covers
[i, i + 1) × resolution (+ voxel_offset), as Neuroglancer draws it.
"""

from __future__ import annotations

import json
import struct
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import tensorstore as ts

MESH_INFO: dict[str, Any] = {"@type": "neuroglancer_legacy_mesh"}
MAX_VOXELS = 320 ** 3
"""The most voxels of a scale meshed at once (the whole scale is read): larger volumes are
meshed from a coarser scale of their pyramid."""
_LOCK = threading.Lock()


def encode_mesh(vertices: np.ndarray, faces: np.ndarray) -> bytes:
    """The legacy mesh fragment of `vertices` (n, 3) nm and `faces` (m, 3) vertex indices."""
    return (struct.pack("<I", len(vertices))
            + np.ascontiguousarray(vertices, dtype="<f4").tobytes()
            + np.ascontiguousarray(faces, dtype="<u4").tobytes())


def decode_mesh(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (n, 3), faces (m, 3)) of `encode_mesh`'s bytes."""
    (n,) = struct.unpack_from("<I", data)
    vertices = np.frombuffer(data, "<f4", n * 3, 4).reshape(n, 3)
    faces = np.frombuffer(data, "<u4", offset=4 + 12 * n).reshape(-1, 3)
    return vertices, faces


def mesh_labels(labels_xyz: np.ndarray, resolution: list[float],
                offset: list[int]) -> dict[int, bytes]:
    """Every nonzero label's mesh fragment, from a labelled (x, y, z) array."""
    import zmesh

    mesher = zmesh.Mesher(tuple(float(r) for r in resolution))
    # A border of background closes the surfaces of segments that touch the volume's faces.
    mesher.mesh(np.asfortranarray(np.pad(labels_xyz, 1)))
    shift = (np.asarray(offset, np.float64) - 0.5) * np.asarray(resolution, np.float64)
    out = {}
    for label in mesher.ids():
        mesh = mesher.get(int(label), normals=False)
        out[int(label)] = encode_mesh(mesh.vertices + shift, mesh.faces)
        mesher.erase(int(label))
    return out


def mesh_scale(scales: list[dict[str, Any]]) -> int:
    """The index of the finest scale with at most `MAX_VOXELS` voxels (ValueError when even the
    coarsest has more)."""
    for index, scale in enumerate(scales):
        if int(np.prod([int(s) for s in scale["size"]])) <= MAX_VOXELS:
            return index
    coarsest = int(np.prod([int(s) for s in scales[-1]["size"]]))
    raise ValueError(f"meshes are made from a scale of up to {MAX_VOXELS} voxels; the coarsest "
                     f"of this segmentation's {len(scales)} scales has {coarsest}")


@lru_cache(maxsize=2)
def _all_meshes(root: str, mtime: float) -> dict[int, bytes]:
    info = json.loads((Path(root) / "info").read_text())
    index = mesh_scale(info["scales"])
    scale = info["scales"][index]
    store = ts.open({"driver": "neuroglancer_precomputed",
                     "kvstore": {"driver": "file", "path": root},
                     "scale_index": index}, read=True).result()
    labels = store[..., 0].read().result()
    offset = [int(o) for o in scale.get("voxel_offset", [0, 0, 0])]
    return mesh_labels(np.asarray(labels), [float(r) for r in scale["resolution"]], offset)


def segment_meshes(root: Path) -> dict[int, bytes]:
    """Each segment's fragment for the precomputed segmentation at `root` (made once per
    version of its info file; ValueError when even its coarsest scale is too large)."""
    with _LOCK:
        return _all_meshes(str(root), (root / "info").stat().st_mtime)


def mesh_file(root: Path, rel: str) -> bytes | dict[str, Any] | None:
    """The body of `mesh/{rel}`: info or a manifest (dicts), a fragment (bytes), or None when
    there is no such file."""
    if rel == "info":
        return MESH_INFO
    name, _, fragment = rel.partition(":0")
    if not name.isdigit():
        return None
    meshes = segment_meshes(root)
    if int(name) not in meshes:
        return None
    if fragment == "":
        return {"fragments": [f"{int(name)}:0:{int(name)}"]}
    if fragment == f":{int(name)}":
        return meshes[int(name)]
    return None
