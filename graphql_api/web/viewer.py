"""Neuroglancer links to our own viewer (/neuroglancer/v/offline/) showing a dataset's volumes
served by this API (/volumes/...): the EM image, the segmentation with the chosen segments and
their skeletons (and, on request, the synapses as an annotation layer linked to segments)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

VIEWER_PATH = "neuroglancer/v/offline/"


def has_volumes(meta: dict[str, Any]) -> bool:
    return bool(meta.get("runDirectory"))


def viewer_state(base_url: str, dataset: str, meta: dict[str, Any],
                 segments: Sequence[int], synapses: bool = False) -> dict[str, Any]:
    """The viewer state for `dataset`'s volumes at `base_url` (ending in '/').

    With `synapses`, also the synapse annotation layer. Off by default: in the viewer build of
    the `neuroglancer` package (2.41), a state with an annotation layer loses its first layer
    to an error ("Cannot read properties of undefined") on most loads; the layer's files are
    served and tested (`volumes`), and other Neuroglancer builds can use them."""
    root = f"precomputed://{base_url}volumes/{dataset}"
    voxel = [float(v) for v in meta.get("voxelSizeNm") or (1.0, 1.0, 1.0)]
    layers: list[dict[str, Any]] = []
    if meta.get("emDirectory"):
        layers.append({"type": "image", "source": f"{root}/image", "name": "image"})
    layers.append({"type": "segmentation", "source": f"{root}/segmentation",
                   "name": "segmentation", "segments": [str(int(s)) for s in segments]})
    if synapses:
        layers.append({"type": "annotation", "source": f"{root}/synapses", "name": "synapses",
                       "linkedSegmentationLayer": {"pre_segment": "segmentation",
                                                   "post_segment": "segmentation"},
                       "filterBySegmentation": [], "shader": _SYNAPSE_SHADER})
    return {
        "dimensions": {axis: [v * 1e-9, "m"] for axis, v in zip("xyz", voxel, strict=True)},
        "layers": layers,
        "layout": "4panel",
    }


_SYNAPSE_SHADER = "void main() { setColor(vec3(1.0, 0.3, 0.1)); setPointMarkerSize(6.0); }"


def viewer_url(base_url: str, state: dict[str, Any]) -> str:
    """`{base_url}neuroglancer/v/offline/#!{state}`: a link to the viewer this API serves."""
    text = json.dumps(state, separators=(",", ":"))
    return f"{base_url}{VIEWER_PATH}#!{quote(text, safe='')}"
