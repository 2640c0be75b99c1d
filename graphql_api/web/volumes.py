"""Each dataset's volumes over HTTP as Neuroglancer precomputed, from the run directory recorded
at ingest (`runDirectory`, `emDirectory` on the dataset's Meta):

    /volumes/{dataset}/image/...         the EM image (EM directory, image.precomputed)
    /volumes/{dataset}/segmentation/...  the reconstruction; its info names `skeletons`
    /volumes/{dataset}/segmentation/skeletons/{id}   from skeletons/{id}.swc
    /volumes/{dataset}/segmentation/mesh/...         segment meshes, made on first request
    /volumes/{dataset}/truth/...         ground truth, when the EM directory has it
    /volumes/{dataset}/synapses/...      synapses.parquet as an annotation layer

Every answer allows any origin (CORS: Neuroglancer may run elsewhere), files honour Range
requests, and access is decided per dataset as for GraphQL (`access.readable_dataset`).
"""

from __future__ import annotations

import asyncio
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import FileResponse

from connectome_query.graphql_api.web import meshes, precomputed
from connectome_query.graphql_api.web.access import Dataset, DriverGetter, readable_dataset

CORS = {"Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
        "Access-Control-Allow-Headers": "Range, Authorization",
        "Access-Control-Expose-Headers": "Content-Range, Content-Length, Accept-Ranges"}
JSON = "application/json"
BINARY = "application/octet-stream"

LAYERS = {"image": ("emDirectory", "image.precomputed"),
          "segmentation": ("runDirectory", "segmentation.precomputed"),
          "truth": ("emDirectory", "truth/segmentation.precomputed")}
"""Volume layers: which Meta directory holds them, and where inside it."""


def layer_root(ds: Dataset, layer: str) -> Path:
    """The folder of `layer` for `ds`, or 404 naming what is missing."""
    if layer not in LAYERS:
        raise HTTPException(404, f"no layer {layer!r}; layers: {', '.join(LAYERS)}, synapses")
    field, inside = LAYERS[layer]
    base = ds.meta.get(field)
    if not base:
        raise HTTPException(404, f"dataset {ds.name!r} has no {layer} volume: no {field} was "
                                 "recorded at ingest (load a reconstruction run directory)")
    root = Path(str(base)) / inside
    if not (root / "info").is_file():
        raise HTTPException(404, f"dataset {ds.name!r}: {layer} volume missing on the server")
    return root


def run_dir(ds: Dataset) -> Path:
    return Path(str(layer_root(ds, "segmentation").parent))


def _inside(root: Path, rel: str) -> Path:
    """`root/rel`, refusing any path that leaves `root` (404)."""
    target = (root / rel).resolve()
    if root.resolve() not in target.parents or not target.is_file():
        raise HTTPException(404, f"no such file: {rel!r}")
    return target


def _json(value: Any) -> Response:
    return Response(json.dumps(value), media_type=JSON, headers=CORS)


@lru_cache(maxsize=16)
def _synapses(path: str, mtime: float) -> pd.DataFrame:
    return pd.read_parquet(path).sort_values("synapse_id").reset_index(drop=True)


def synapse_table(ds: Dataset) -> pd.DataFrame:
    path = run_dir(ds) / "synapses.parquet"
    if not path.is_file():
        raise HTTPException(404, f"dataset {ds.name!r}: no synapses.parquet in its run")
    return _synapses(str(path), path.stat().st_mtime)


def extent_nm(ds: Dataset) -> list[float]:
    """The volume's size in nm, from the segmentation's info (x, y, z)."""
    info = json.loads((layer_root(ds, "segmentation") / "info").read_text())
    scale = info["scales"][0]
    return [float(s) * float(r) for s, r in zip(scale["size"], scale["resolution"], strict=True)]


def synapse_file(ds: Dataset, rel: str) -> Response:
    table = synapse_table(ds)
    if rel == "info":
        return _json(precomputed.annotation_info(table, extent_nm(ds)))
    kind, _, key = rel.partition("/")
    if kind == "spatial0" and key == "0_0_0":
        body = precomputed.encode_annotations(table)
    elif kind == "by_id" and key.isdigit():
        row = table[table["synapse_id"] == int(key)]
        if row.empty:
            raise HTTPException(404, f"no synapse {key}")
        body = precomputed.encode_annotation(row)
    elif kind in dict(precomputed.RELATIONSHIPS) and key.isdigit():
        column = dict(precomputed.RELATIONSHIPS)[kind]
        body = precomputed.encode_annotations(table[table[column] == int(key)])
    else:
        raise HTTPException(404, f"no such file: {rel!r}")
    return Response(body, media_type=BINARY, headers=CORS)


def skeleton_file(ds: Dataset, rel: str) -> Response:
    if rel == "info":
        return _json(precomputed.SKELETON_INFO)
    if not rel.isdigit():
        raise HTTPException(404, f"no such skeleton: {rel!r}")
    swc = run_dir(ds) / "skeletons" / f"{int(rel)}.swc"
    if not swc.is_file():
        raise HTTPException(404, f"no skeleton for segment {rel}")
    body = precomputed.encode_skeleton(precomputed.read_swc(swc))
    return Response(body, media_type=BINARY, headers=CORS)


def volume_file(ds: Dataset, layer: str, rel: str) -> Response:
    root = layer_root(ds, layer)
    if rel == "info":
        info = json.loads((root / "info").read_text())
        if layer == "segmentation" and (run_dir(ds) / "skeletons").is_dir():
            info["skeletons"] = "skeletons"
        if layer == "segmentation":
            info["mesh"] = "mesh"
        return _json(info)
    if layer == "segmentation" and rel.startswith("skeletons/"):
        return skeleton_file(ds, rel.removeprefix("skeletons/"))
    return FileResponse(_inside(root, rel), media_type=BINARY, headers=CORS)


def mesh_response(ds: Dataset, rel: str) -> Response:
    try:
        body = meshes.mesh_file(layer_root(ds, "segmentation"), rel)
    except ValueError as exc:
        raise HTTPException(404, f"dataset {ds.name!r}: {exc}") from None
    if body is None:
        raise HTTPException(404, f"no such mesh file: {rel!r}")
    if isinstance(body, dict):
        return _json(body)
    return Response(body, media_type=BINARY, headers=CORS)


def router(driver: DriverGetter, database: str) -> APIRouter:
    """The /volumes routes."""
    api = APIRouter(prefix="/volumes", include_in_schema=False)

    @api.options("/{dataset}/{layer}/{rel:path}")
    async def preflight(dataset: str, layer: str, rel: str) -> Response:
        return Response(status_code=204, headers=CORS)

    @api.api_route("/{dataset}/{layer}/{rel:path}", methods=["GET", "HEAD"])
    async def volume(request: Request, dataset: str, layer: str, rel: str) -> Response:
        try:
            ds = await readable_dataset(request, driver(), database, dataset)
            if layer == "synapses":
                return synapse_file(ds, rel)
            if layer == "segmentation" and rel.startswith("mesh/"):
                return await asyncio.to_thread(mesh_response, ds, rel.removeprefix("mesh/"))
            return volume_file(ds, layer, rel)
        except HTTPException as exc:
            raise HTTPException(exc.status_code, exc.detail,
                                headers={**CORS, **(exc.headers or {})}) from None

    return api
