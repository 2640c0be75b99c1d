"""Joining segments across runs of wholly masked sections, on the engine (`segment.gaps`).

Two stages between the agglomeration and the relabel pass: "masked sections" (one task per layer
of blocks along z) tells which sections of the defect masks are masked whole; "gaps" (one task
per run of them) reads the fragments of the two good sections either side (the face and the
section behind it, for each segment's drift), maps them to their final ids and returns the pairs
of segments to join (`gaps.drifted_pairs`). The client joins them in the fragments' final-id
table, so the relabel pass writes the joined ids. Whole sections and final ids only: the answer
does not depend on the block shape.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from connectome_query.reconstruct.engine.context import Run, masked, read
from connectome_query.reconstruct.engine.grid import Box
from connectome_query.reconstruct.engine.runner import Engine, Record
from connectome_query.reconstruct.segment import gaps


def _layer(run: Run, item: int) -> Box:
    z0 = item * run.block[0]
    return Box((z0, 0, 0), (min(z0 + run.block[0], run.shape[0]), *run.shape[1:]))


def _whole_task(item: int, run: Run) -> Record:
    bad, _ = masked(run, _layer(run, item))
    if bad is None:
        return {"whole": np.zeros(0, bool)}
    return {"whole": np.asarray(bad.reshape(len(bad), -1).all(axis=1))}


def _section(run: Run, z: int, lut: np.ndarray) -> np.ndarray:
    box = Box((z, 0, 0), (z + 1, *run.shape[1:]))
    frags = read(run.work("fragments.zarr"), box, "fragments").astype(np.int64)
    return np.asarray(lut[frags[0].reshape(-1)]).reshape(frags.shape[1:])


def _gap_task(item: int, run: Run, runs: np.ndarray, lut_path: str) -> Record:
    z0, z1 = (int(v) for v in runs[item])
    lut = np.load(lut_path, mmap_mode="r")
    behind_below = _section(run, z0 - 2, lut) if z0 >= 2 else None
    behind_above = _section(run, z1 + 2, lut) if z1 + 2 < run.shape[0] else None
    return {"pairs": gaps.drifted_pairs((behind_below, _section(run, z0 - 1, lut)),
                                        (_section(run, z1 + 1, lut), behind_above),
                                        z1 - z0 + 2)}


def join_gaps(engine: Engine, run: Run, lut: np.ndarray, lut_path: Path, sizes: np.ndarray,
              first: np.ndarray) -> np.ndarray:
    """The fragments' final ids (`lut`, saved at `lut_path`) with the segments that match
    across each run of wholly masked sections joined; `lut` itself without defect masks."""
    if run.defects_path is None:
        return lut
    layers = range(-(-run.shape[0] // run.block[0]))
    whole = np.concatenate(engine.run("masked sections", layers, _whole_task, run)
                           .gather("whole"))
    runs = np.array(gaps.masked_runs(whole), np.int64).reshape(-1, 2)
    if not len(runs):
        return lut
    found = engine.run("gaps", range(len(runs)), _gap_task, run, runs, str(lut_path))
    pairs = np.concatenate([np.zeros((0, 2), np.uint64), *found.gather("pairs")])
    return gaps.join(lut, sizes, first, pairs)
