"""Neuroglancer links: a viewer state (JSON in the URL fragment) showing neurons and synapses.

The dataset's volumes come from its Meta node, written at ingest: `neuroglancerSource` (the
segmentation, e.g. `precomputed://gs://bucket/seg`), optional `imageSource`, `voxelSizeNm`
([x, y, z] nm per voxel; default 1 nm) and optional `neuroglancerBase` (viewer address).
Synapse locations are stored in nm and shown in voxels.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, unquote

DEFAULT_BASE = "https://neuroglancer-demo.appspot.com/"


def viewer_state(
    *,
    segmentation: str,
    segments: Sequence[int],
    synapses: Sequence[dict[str, Any]] = (),
    voxel_size_nm: Sequence[float] | None = None,
    image: str | None = None,
    center_nm: Sequence[float] | None = None,
) -> dict[str, Any]:
    """The Neuroglancer JSON state: image (if any), segmentation with `segments` selected, and
    one point annotation per synapse (`{synapseId, x, y, z}` in nm, shown in voxels)."""
    vs = [float(v) for v in (voxel_size_nm or (1.0, 1.0, 1.0))]
    if len(vs) != 3 or min(vs) <= 0:
        raise ValueError(f"voxel size must be three positive numbers, got {voxel_size_nm!r}")
    layers: list[dict[str, Any]] = []
    if image:
        layers.append({"type": "image", "source": image, "name": "image"})
    layers.append({"type": "segmentation", "source": segmentation, "name": "segmentation",
                   "segments": [str(int(s)) for s in segments]})
    points = [[s["x"] / vs[0], s["y"] / vs[1], s["z"] / vs[2]] for s in synapses]
    if synapses:
        layers.append({
            "type": "annotation", "name": "synapses", "source": "local://annotations",
            "annotations": [{"type": "point", "id": str(s["synapseId"]), "point": pt}
                            for s, pt in zip(synapses, points, strict=True)],
        })
    state: dict[str, Any] = {
        "dimensions": {axis: [v * 1e-9, "m"] for axis, v in zip("xyz", vs, strict=True)},
        "layers": layers,
        "selectedLayer": {"layer": "segmentation"},
        "layout": "xy-3d",
    }
    if points:
        state["position"] = [sum(p[i] for p in points) / len(points) for i in range(3)]
    elif center_nm is not None:
        state["position"] = [float(c) / v for c, v in zip(center_nm, vs, strict=True)]
    return state


def state_url(state: dict[str, Any], base: str | None = None) -> str:
    """`base#!<url-encoded JSON>`, the form Neuroglancer reads."""
    text = json.dumps(state, separators=(",", ":"))
    return f"{base or DEFAULT_BASE}#!{quote(text, safe='')}"


def parse_url(url: str) -> dict[str, Any]:
    """The state inside a link made by `state_url` (for tests and clients)."""
    _, _, fragment = url.partition("#!")
    return dict(json.loads(unquote(fragment)))
