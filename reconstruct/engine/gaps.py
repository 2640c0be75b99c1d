"""Joining segments across runs of wholly masked sections, on the engine (`segment.gaps`), for
every segmenter.

Two stages between the segmenter's numbering and its relabel pass: "masked sections" (one task
per layer of blocks along z) tells which sections of the defect masks are masked whole; "gaps"
(one task per run of them) reads the segment ids of the two good sections either side (the face
and the section behind it, for each segment's drift) and returns the pairs of segments to join
(`gaps.drifted_pairs`). A segmenter hands `gap_pairs` how to read a section's segment ids from its
working state (the watershed: fragments through their final-id table, `FragmentSections`; the
FFN: provisional ids through their numbering) and joins the pairs in that table with
`gaps.join`, so its relabel pass writes the joined ids. Whole sections and final ids only: the
answer does not depend on the block shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from connectome_query.reconstruct.engine.context import Run, masked, read
from connectome_query.reconstruct.engine.grid import Box, Triple
from connectome_query.reconstruct.engine.runner import Engine, Record
from connectome_query.reconstruct.segment import gaps

Masked = Callable[[Box], np.ndarray | None]
"""The voxels of a box no decision may come from (None: the volume has no defect masks);
picklable, called on a worker."""
SectionIds = Callable[[int], np.ndarray]
"""The segment ids (2-D) of section z; picklable, called on a worker."""


def section_box(shape: Triple, z: int) -> Box:
    return Box((z, 0, 0), (z + 1, *shape[1:]))


@dataclass(frozen=True)
class RunMasked:
    """A run's defect masks as a `Masked`."""

    run: Run

    def __call__(self, box: Box) -> np.ndarray | None:
        return masked(self.run, box)[0]


@dataclass(frozen=True)
class FragmentSections:
    """Segment ids of a section of the watershed's fragments, through their final-id table
    (a .npy file, memory-mapped)."""

    fragments: str
    lut: str
    shape: Triple

    def __call__(self, z: int) -> np.ndarray:
        frags = read(Path(self.fragments), section_box(self.shape, z), "fragments")
        lut = np.load(self.lut, mmap_mode="r")
        return np.asarray(lut[frags[0].astype(np.int64).reshape(-1)]).reshape(frags.shape[1:])


def _whole_task(item: int, shape: Triple, depth: int, bad_of: Masked) -> Record:
    z0 = item * depth
    box = Box((z0, 0, 0), (min(z0 + depth, shape[0]), *shape[1:]))
    bad = bad_of(box)
    if bad is None:
        return {"whole": np.zeros(box.shape[0], bool)}
    return {"whole": np.asarray(bad.reshape(len(bad), -1).all(axis=1))}


def _gap_task(item: int, runs: np.ndarray, nz: int, ids_of: SectionIds) -> Record:
    z0, z1 = (int(v) for v in runs[item])
    behind_below = ids_of(z0 - 2) if z0 >= 2 else None
    behind_above = ids_of(z1 + 2) if z1 + 2 < nz else None
    return {"pairs": gaps.drifted_pairs((behind_below, ids_of(z0 - 1)),
                                        (ids_of(z1 + 1), behind_above), z1 - z0 + 2)}


def gap_pairs(engine: Engine, shape: Triple, depth: int, bad_of: Masked,
              ids_of: SectionIds) -> np.ndarray:
    """Pairs (uint64, (k, 2)) of segment ids that match across each run of wholly masked
    sections: the masks read in layers `depth` sections deep, the segment ids of the good
    sections either side of each run by `ids_of`."""
    layers = range(-(-shape[0] // depth))
    whole = np.concatenate(engine.run("masked sections", layers, _whole_task, shape, depth,
                                      bad_of).gather("whole"))
    runs = np.array(gaps.masked_runs(whole), np.int64).reshape(-1, 2)
    if not len(runs):
        return np.zeros((0, 2), np.uint64)
    found = engine.run("gaps", range(len(runs)), _gap_task, runs, shape[0], ids_of)
    return np.concatenate([np.zeros((0, 2), np.uint64), *found.gather("pairs")])


def join_gaps(engine: Engine, run: Run, lut: np.ndarray, lut_path: Path, sizes: np.ndarray,
              first: np.ndarray) -> np.ndarray:
    """The watershed's fragments' final ids (`lut`, saved at `lut_path`) with the segments
    that match across each run of wholly masked sections joined; `lut` itself without defect
    masks or without a pair to join."""
    if run.defects_path is None:
        return lut
    pairs = gap_pairs(engine, run.shape, run.block[0], RunMasked(run),
                      FragmentSections(str(run.work("fragments.zarr")), str(lut_path),
                                       run.shape))
    return gaps.join(lut, sizes, first, pairs) if len(pairs) else lut
