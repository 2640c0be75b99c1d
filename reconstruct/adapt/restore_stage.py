"""The restorer as a run's stage: `restored.zarr`, the image with the voxels its defect flags
mark (`restore.RESTORED`: blur, folds, cracks, missing tissue) restored, and
`restored_defects.zarr`, the flags with those cleared, which every later stage then reads
instead of the EM directory's (so decisions are taken from restored voxels).

Each block of the network's grid is read with `restore.HALO` of context (the volume reflected
at its faces) from the image the run would otherwise read (the EM image, or the adapter's
translation); sections without a restorable flag are copied unchanged.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np

from connectome_query.reconstruct import io, location
from connectome_query.reconstruct.adapt import restore
from connectome_query.reconstruct.align.masks import has
from connectome_query.reconstruct.engine.context import Run, create_sharded, read, write
from connectome_query.reconstruct.engine.runner import Engine, Record
from connectome_query.reconstruct.errors import ReconstructError
from connectome_query.reconstruct.location import Where


@functools.lru_cache(maxsize=2)
def _restorer(path: str) -> restore.Restorer:
    r: restore.Restorer = io.load_restorer(Path(path))
    return r


def check_restorer(path: Path, defects_path: Where | None, em_dir: Where) -> None:
    """Refuse missing or foreign weights, or a volume without defect flags."""
    io.load_restorer(path)
    if defects_path is None:
        vj = location.join(em_dir, "volume.json")
        raise ReconstructError(f"restorer {path}: it repairs the voxels a volume's defect flags "
                               f"mark, but {vj} names no 'defects' (a volume from `connectome "
                               "prepare` has them)")


def _source(run: Run) -> Where:
    return run.path("translated.zarr") if run.adapter_path else run.em_image


def _restore_task(item: int, run: Run) -> Record:
    """Restore one block of the network's grid."""
    assert run.restorer_path is not None and run.defects_path is not None
    box = run.net_grid.box(item)
    grown = box.grow(restore.HALO, run.shape)
    region = read(_source(run), grown, "image")
    flags = read(run.defects_path, grown, "defect masks")
    pads = [(h - (a - g), h - (gh - b)) for h, a, b, g, gh in
            zip(restore.HALO, box.lo, box.hi, grown.lo, grown.hi, strict=True)]
    out = restore.restore_region(_restorer(run.restorer_path).params,
                                 np.pad(region, pads, mode="reflect"),
                                 np.pad(flags, pads, mode="reflect"))
    core = flags[tuple(slice(a - g, b - g) for a, b, g in zip(box.lo, box.hi, grown.lo,
                                                               strict=True))]
    write(run.path("restored.zarr"), box, out)
    write(run.path("restored_defects.zarr"), box, restore.cleared(core))
    return {"restored": np.array(int(has(core, restore.RESTORED).sum()), np.int64)}


def restore_image(engine: Engine, run: Run) -> tuple[Run, int]:
    """Write `restored.zarr` and `restored_defects.zarr` block by block; returns the run as
    later stages see it (reading the restored flags) and how many voxels were restored."""
    for name in ("restored.zarr", "restored_defects.zarr"):
        create_sharded(run.path(name), run.shape, run.net_grid.block, "uint8",
                       attributes=run.attributes)
    recs = engine.run("restoration", range(len(run.net_grid)), _restore_task, run)
    n = int(sum(int(v) for v in recs.gather("restored")))
    return dataclasses.replace(run, defects_path=str(run.path("restored_defects.zarr"))), n
