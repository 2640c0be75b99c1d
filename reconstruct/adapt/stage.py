"""The adapter as the run's first stage: `translated.zarr`, the EM image in the segmenter's style.

Each block of the network's grid (even in-plane, so the generator's pooling pairs the same pixels
as a whole-volume translation) is read with `model.HALO` of in-plane context (the volume
reflected at its faces), translated B -> A section by section and written as uint8; every later
stage reads `translated.zarr` where it would read the EM image (`Run.image_path`).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from connectome_query.reconstruct import io
from connectome_query.reconstruct.adapt import model
from connectome_query.reconstruct.engine.context import Run, create_sharded, read, write
from connectome_query.reconstruct.engine.runner import Engine, Record
from connectome_query.reconstruct.errors import ReconstructError


@functools.lru_cache(maxsize=2)
def _adapter(path: str) -> model.Adapter:
    adapter: model.Adapter = io.load_adapter(Path(path))
    return adapter


def check_adapter(path: Path, voxel_size_zyx: tuple[float, float, float]) -> None:
    """Refuse missing or foreign weights, or an adapter trained at another voxel size."""
    adapter = io.load_adapter(path)
    try:
        model.check_voxel_size(adapter, voxel_size_zyx)
    except ValueError as e:
        raise ReconstructError(f"adapter {path}: {e}") from e


def _translate_task(item: int, run: Run) -> Record:
    """Translate one block of the network's grid."""
    assert run.adapter_path is not None
    box = run.net_grid.box(item)
    grown = box.grow(model.HALO, run.shape)
    region = read(run.em_image, grown, "EM image")
    pads = [(h - (a - g), h - (gh - b)) for h, a, b, g, gh in
            zip(model.HALO, box.lo, box.hi, grown.lo, grown.hi, strict=True)]
    region = np.pad(region, pads, mode="reflect")
    out = model.translate_region(_adapter(run.adapter_path).g_ba, region)
    write(run.path("translated.zarr"), box, out)
    return {"mean": np.array(float(out.mean()), np.float64)}


def translate(engine: Engine, run: Run) -> Path:
    """Write `translated.zarr` block by block; returns its path."""
    path = run.path("translated.zarr")
    create_sharded(path, run.shape, run.net_grid.block, "uint8", attributes=run.attributes)
    engine.run("translation (adapter)", range(len(run.net_grid)), _translate_task, run)
    return path
