"""Image preparation on the engine: every section's statistics and shift, from blocks and windows.

`sections` sums the pixels (and their squares) of each section over blocks, exactly, and measures
the shift of every candidate section on windows of it and its neighbours (`reconstruct.sections`);
the result, one small table, is saved in the run directory and read by every stage that prepares
a box of the image (`prepared`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from connectome_query.reconstruct import sections
from connectome_query.reconstruct.engine.context import Run, image_reader, read
from connectome_query.reconstruct.engine.grid import Box, Grid
from connectome_query.reconstruct.engine.runner import Engine, Record
from connectome_query.reconstruct.location import Where

SHIFT_BATCH = 16
"""Sections whose shifts one task measures."""


def _image(run: Run) -> Where:
    return run.image_path


def _sums_task(item: int, run: Run) -> Record:
    """Sums of the pixels of each section of a slab of blocks (one block row in z)."""
    grid = Grid(run.shape, (run.block[0], run.shape[1], run.shape[2]))
    box = grid.box(item)
    s1 = np.zeros(box.shape[0], np.int64)
    s2 = np.zeros(box.shape[0], np.int64)
    inner = Grid(box.shape, run.block)
    for _, b in inner.boxes():  # a block's worth of image at a time
        lo = (box.lo[0] + b.lo[0], b.lo[1], b.lo[2])
        part = read(_image(run), Box(lo, (box.lo[0] + b.hi[0], b.hi[1], b.hi[2])), "EM image")
        a, b2 = sections.sums(part)
        s1[b.lo[0]:b.hi[0]] += a
        s2[b.lo[0]:b.hi[0]] += b2
    return {"z0": np.array(box.lo[0], np.int64), "s1": s1, "s2": s2}


def _shift_task(item: int, run: Run, stats_path: str) -> Record:
    """Shifts of the candidate sections of one batch."""
    sec = load(Path(stats_path))
    cand = sec.shift_candidates()
    mine = cand[(cand >= item * SHIFT_BATCH) & (cand < (item + 1) * SHIFT_BATCH)]
    rows, cols = sections.window(run.shape[1:])
    reader = image_reader(run)
    shifts = np.zeros((len(mine), 2), np.int64)
    for k, z in enumerate(mine):
        a = [sec.normalise(reader(int(s), rows, cols)[None], int(s))[0]
             for s in (z - 1, z, z + 1)]
        shifts[k] = sections.shift_of(a[0], a[1], a[2])
    return {"z": mine.astype(np.int64), "shift": shifts}


def save(path: Path, sec: sections.Sections) -> None:
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(tmp, mean=sec.mean, spread=sec.spread, blank=sec.blank, shift=sec.shift)
    tmp.replace(path)


def load(path: Path) -> sections.Sections:
    with np.load(path) as z:
        return sections.Sections(z["mean"], z["spread"], z["blank"], z["shift"])


def sections_of(engine: Engine, run: Run) -> Path:
    """Statistics and shifts of every section, saved in the run's engine folder."""
    nz, ny, nx = run.shape
    slabs = Grid(run.shape, (run.block[0], ny, nx))
    recs = engine.run("image statistics", range(len(slabs)), _sums_task, run)
    s1 = np.zeros(nz, np.int64)
    s2 = np.zeros(nz, np.int64)
    for _, r in recs:
        z0 = int(r["z0"])
        s1[z0:z0 + len(r["s1"])] = r["s1"]
        s2[z0:z0 + len(r["s2"])] = r["s2"]
    sec = sections.Sections.from_sums(s1, s2, ny * nx)
    stats = run.work("sections_stats.npz")
    save(stats, sec)
    n = -(-nz // SHIFT_BATCH)
    shifts = engine.run("section shifts", range(n), _shift_task, run, str(stats))
    shift = np.zeros((nz, 2), np.int64)
    for _, r in shifts:
        shift[r["z"]] = r["shift"]
    path = run.work("sections.npz")
    save(path, sec.with_shifts(shift))
    return path


def prepared(run: Run, box: Box, sec: sections.Sections) -> np.ndarray:
    """The prepared image of a box of the volume."""
    return sections.prepared(image_reader(run), sec, box.lo, box.hi,
                             run.shape[1:])


def normalised(run: Run, box: Box, sec: sections.Sections) -> np.ndarray:
    """A box of the image, each section normalised (no repair: what synapse detection
    reads)."""
    return sec.normalise(read(_image(run), box, "EM image"), box.lo[0])
