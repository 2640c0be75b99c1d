"""Neuroglancer links to our own viewer showing a dataset's volumes served by this API
(/volumes/...): the EM image, the segmentation with the chosen segments and their skeletons, and
the synapses as an annotation layer linked to the segmentation (pre- and postsynaptic segment).

A link carries its viewer state in the path, `/neuroglancer/v/{token}/` with `token` the state
as zlib-compressed URL-safe base64, and the viewer receives it from our event stream
(`neuroglancer_client`), not from the URL fragment. Reason: the viewer in the `neuroglancer`
package (2.41) writes the fragment back from its state on a timer while it is still building
the layers from the fragment; when that timer fires mid-way (a busy machine), an annotation
layer built but not yet restored fails to serialise ("Cannot read properties of undefined
(reading 'length')") and the layer being restored is dropped. State received from the event
stream has no such timer."""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

VIEWER_PREFIX = "neuroglancer/v/"
TOKEN_MARK = "s"
"""Tokens carrying a state start with this letter (others, e.g. 'offline', carry none)."""


def has_volumes(meta: dict[str, Any]) -> bool:
    return bool(meta.get("runDirectory"))


def has_synapses(meta: dict[str, Any]) -> bool:
    """Whether the run directory recorded at ingest holds a synapse table."""
    return has_volumes(meta) and (Path(str(meta["runDirectory"])) / "synapses.parquet").is_file()


def viewer_state(base_url: str, dataset: str, meta: dict[str, Any],
                 segments: Sequence[int], synapses: bool | None = None) -> dict[str, Any]:
    """The viewer state for `dataset`'s volumes at `base_url` (ending in '/'), with the synapse
    annotation layer when `synapses` (by default: when the run has a synapse table)."""
    if synapses is None:
        synapses = has_synapses(meta)
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
                       "shader": _SYNAPSE_SHADER})
    return {
        "dimensions": {axis: [v * 1e-9, "m"] for axis, v in zip("xyz", voxel, strict=True)},
        "layers": layers,
        "layout": "4panel",
    }


_SYNAPSE_SHADER = "void main() { setColor(vec3(1.0, 0.3, 0.1)); setPointMarkerSize(6.0); }"


def state_token(state: dict[str, Any]) -> str:
    """`state` as a path segment: 's' + URL-safe base64 of its compressed JSON, unpadded."""
    raw = zlib.compress(json.dumps(state, separators=(",", ":")).encode(), 9)
    return TOKEN_MARK + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def token_state(token: str) -> dict[str, Any] | None:
    """The state inside a token made by `state_token`, or None for any other token."""
    if not token.startswith(TOKEN_MARK):
        return None
    text = token[len(TOKEN_MARK):]
    try:
        raw = zlib.decompress(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        state = json.loads(raw)
    except (binascii.Error, zlib.error, ValueError):
        return None
    return state if isinstance(state, dict) else None


def viewer_url(base_url: str, state: dict[str, Any]) -> str:
    """`{base_url}neuroglancer/v/{token}/`: a link to the viewer this API serves."""
    return f"{base_url}{VIEWER_PREFIX}{state_token(state)}/"


def parse_viewer_url(url: str) -> dict[str, Any]:
    """The state inside a link made by `viewer_url` (for tests and clients)."""
    path = urlsplit(url).path
    _, found, rest = path.partition("/" + VIEWER_PREFIX)
    state = token_state(rest.split("/", 1)[0]) if found else None
    if state is None:
        raise ValueError(f"not a link to our viewer with a state: {url!r}")
    return state
