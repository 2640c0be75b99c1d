"""Synapses on the engine: cleft components found block by block, each by the block it starts in.

A block reads the cleft probability, the segmentation and the normalised image with a halo and
keeps the cleft components whose box starts inside it (`synapses.find`); a component that, with
its context, reaches past the halo into the next block's region is read again with twice the
halo, so each is always seen whole. Voxels the volume's defect masks flag hold no cleft. The
blocks' rows sorted by the components' first voxels are
the whole volume's synapse table (`synapses.table`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from connectome_query.reconstruct import synapses
from connectome_query.reconstruct.engine import image
from connectome_query.reconstruct.engine.context import Run, masked, read
from connectome_query.reconstruct.engine.runner import Engine, Record

HALO = (16, 48, 48)
"""First context read around a block (clefts span 1-4 sections and under 40 pixels)."""


def _task(item: int, run: Run, sections_path: str) -> Record:
    box = run.grid.box(item)
    sec = image.load(Path(sections_path))
    halo = HALO
    while True:
        region = box.grow(halo, run.shape)
        core = (tuple(a - r for a, r in zip(box.lo, region.lo, strict=True)),
                tuple(b - r for b, r in zip(box.hi, region.lo, strict=True)))
        bad, _ = masked(run, region)
        try:
            rows = synapses.find(read(run.path("clefts.zarr"), region, "clefts"),
                                 read(run.path("segmentation.zarr"), region, "segmentation"),
                                 image.normalised(run, region, sec), run.voxel_size_zyx,
                                 origin=region.lo, volume=run.shape,
                                 core=core, whole=True, masked=bad)  # type: ignore[arg-type]
            return {"rows": rows}
        except synapses.NeedsMoreContext:
            halo = tuple(2 * h for h in halo)  # type: ignore[assignment]


def detect(engine: Engine, run: Run, sections_path: Path) -> pd.DataFrame:
    recs = engine.run("synapses", range(len(run.grid)), _task, run, str(sections_path))
    return synapses.table(np.concatenate([np.zeros((0, 9)), *recs.gather("rows")]))
