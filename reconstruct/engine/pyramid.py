"""The Neuroglancer copy: `segmentation.precomputed` with a downsampled pyramid, tile by tile.

Scale 0 is copied from `segmentation.zarr`; each further scale halves x and y (and z once the
sections are thinner than the pixels would be) with the most frequent label of each 2x2(x2)
group (TensorStore's `downsample`, method "mode"), read from the scale before, until a section
fits one 64 x 64 chunk. Tiles are whole chunks of the scale they write, so no two tasks write one
chunk; a scale's tiles start once the scale before is complete.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import tensorstore as ts

from connectome_query.reconstruct import io
from connectome_query.reconstruct.engine.context import Run, read
from connectome_query.reconstruct.engine.grid import Grid, Triple, aligned
from connectome_query.reconstruct.engine.runner import Engine, Record

CHUNK_ZYX = (32, 64, 64)


def scales(shape: Triple, voxel_size_zyx: tuple[float, float, float]
           ) -> list[tuple[Triple, tuple[float, float, float], Triple]]:
    """(shape z, y, x; voxel size z, y, x; factor from the scale before) of each scale."""
    out = [(shape, voxel_size_zyx, (1, 1, 1))]
    while max(out[-1][0][1:]) > CHUNK_ZYX[1]:
        (z, y, x), (vz, vy, vx), _ = out[-1]
        fz = 2 if vz < 2 * vy and z > 1 else 1
        out.append(((-(-z // fz), -(-y // 2), -(-x // 2)), (vz * fz, vy * 2, vx * 2),
                    (fz, 2, 2)))
    return out


def _spec(path: Path) -> dict[str, Any]:
    return {"driver": "neuroglancer_precomputed",
            "kvstore": {"driver": "file", "path": str(Path(path).resolve())}}


def create(path: Path, shape: Triple, voxel_size_zyx: tuple[float, float, float]) -> int:
    """The volume and its scales (kept when they exist: a resumed run); how many scales."""
    levels = scales(shape, voxel_size_zyx)
    for k, (sh, vs, _) in enumerate(levels):
        spec = {**_spec(path), "create": True, "open": True,
                "scale_metadata": {"size": list(sh[::-1]), "resolution": list(vs[::-1]),
                                   "encoding": "compressed_segmentation",
                                   "chunk_size": [min(c, s) for c, s in
                                                  zip(CHUNK_ZYX[::-1], sh[::-1],
                                                      strict=True)]}}
        if k == 0:
            spec["multiscale_metadata"] = {"type": "segmentation", "data_type": "uint64",
                                           "num_channels": 1}
        ts.open(spec).result()
    return len(levels)


def _tiles(run: Run, level: int) -> Grid:
    shape = scales(run.shape, run.voxel_size_zyx)[level][0]
    return Grid(shape, aligned(run.block, CHUNK_ZYX))


def _tile_task(item: int, run: Run, level: int) -> Record:
    path = run.path("segmentation.precomputed")
    box = _tiles(run, level).box(item)
    dst = ts.open({**_spec(path), "scale_index": level}).result()
    (z0, y0, x0), (z1, y1, x1) = box.lo, box.hi
    if level == 0:
        data = read(run.path("segmentation.zarr"), box, "segmentation").transpose(2, 1, 0)
    else:
        src = ts.open({**_spec(path), "scale_index": level - 1}).result()
        fz, fy, fx = scales(run.shape, run.voxel_size_zyx)[level][2]
        down = ts.downsample(src, [fx, fy, fz, 1], method="mode")
        data = io.read_block(down, (slice(x0, x1), slice(y0, y1), slice(z0, z1), 0), path,
                             "segmentation.precomputed")
    dst[x0:x1, y0:y1, z0:z1, 0].write(np.ascontiguousarray(data)).result()
    return {}


def pyramid(engine: Engine, run: Run) -> None:
    """Write `segmentation.precomputed` with all its scales."""
    n = create(run.path("segmentation.precomputed"), run.shape, run.voxel_size_zyx)
    for level in range(n):
        engine.run(f"precomputed scale {level}", range(len(_tiles(run, level))), _tile_task,
                   run, level)
