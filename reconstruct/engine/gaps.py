"""Joining segments across runs of wholly masked sections, on the engine (`segment.gaps`), for
every segmenter.

Two stages between the segmenter's numbering and its relabel pass: "masked sections" (one task
per layer of blocks along z) tells which sections of the defect masks are masked whole; "gaps"
(one task per run of them) reads the segment ids of the good sections either side (the face
and the two sections behind it, for each piece's drift) and returns the pairs of segments to join
(`gaps.drifted_pairs`). A segmenter hands `gap_pairs` how to read a section's segment ids from its
working state (the watershed: fragments through their final-id table, `FragmentSections`; the
FFN: provisional ids through their numbering) and joins the pairs in that table with
`gaps.join`, so its relabel pass writes the joined ids. Whole sections and final ids only: the
answer does not depend on the block shape.

After the relabel pass, "gap fill" (`fill_gaps`) labels the masked sections of each such run
where the two good sections either side hold one segment at the same pixel (`gaps.agreed`),
tile by tile on the segmentation's chunk grid in y and x, so a cell joined across a gap is
one connected object, as its skeleton and mesh need. Every other masked voxel stays 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import fastremap
import numpy as np

from connectome_query.reconstruct import io
from connectome_query.reconstruct.engine.context import Run, masked, read, write
from connectome_query.reconstruct.engine.grid import Box, Grid, Triple, aligned
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

    def section(z: int) -> np.ndarray | None:
        return ids_of(z) if 0 <= z < nz else None

    below = [section(z) for z in (z0 - 3, z0 - 2, z0 - 1)]
    above = [section(z) for z in (z1 + 1, z1 + 2, z1 + 3)]
    return {"pairs": gaps.drifted_pairs(below, above, z1 - z0 + 2)}


def masked_runs(engine: Engine, shape: Triple, depth: int, bad_of: Masked) -> np.ndarray:
    """Runs (z0, z1) ((k, 2) int64) of wholly masked sections with a good section either
    side (`gaps.masked_runs`), the masks read in layers `depth` sections deep."""
    layers = range(-(-shape[0] // depth))
    whole = np.concatenate(engine.run("masked sections", layers, _whole_task, shape, depth,
                                      bad_of).gather("whole"))
    return np.array(gaps.masked_runs(whole), np.int64).reshape(-1, 2)


def gap_pairs(engine: Engine, shape: Triple, depth: int, bad_of: Masked,
              ids_of: SectionIds) -> np.ndarray:
    """Pairs (uint64, (k, 2)) of segment ids that match across each run of wholly masked
    sections: the masks read in layers `depth` sections deep, the segment ids of the good
    sections either side of each run by `ids_of`."""
    runs = masked_runs(engine, shape, depth, bad_of)
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


def _fill_task(item: int, runs: np.ndarray, tiles: Grid, path: str) -> Record:
    box = tiles.box(item)
    (_, y0, x0), (_, y1, x1) = box.lo, box.hi
    ids, counts = [], []
    for z0, z1 in (tuple(int(v) for v in r) for r in runs):
        def face(z: int) -> np.ndarray:
            return read(Path(path), Box((z, y0, x0), (z + 1, y1, x1)), "segmentation")[0]
        fill = gaps.agreed(face(z0 - 1), face(z1 + 1))
        depth = z1 - z0 + 1
        write(Path(path), Box((z0, y0, x0), (z1 + 1, y1, x1)),
              np.broadcast_to(fill, (depth, *fill.shape)))
        u, n = fastremap.unique(fill, return_counts=True)
        ids.append(u[u != 0].astype(np.int64))
        counts.append(n[u != 0].astype(np.int64) * depth)
    return {"ids": np.concatenate([np.zeros(0, np.int64), *ids]),
            "counts": np.concatenate([np.zeros(0, np.int64), *counts])}


def fill_gaps(engine: Engine, run: Run, sizes: dict[int, int]) -> dict[int, int]:
    """Label the masked sections of each run of wholly masked sections in `segmentation.zarr`
    where the good sections either side agree (`gaps.agreed`); returns `sizes` (voxels per
    segment) with the filled voxels counted. Segment ids and their numbering do not change:
    a filled voxel takes an id the section below the run already holds."""
    if run.defects_path is None:
        return sizes
    runs = masked_runs(engine, run.shape, run.block[0], RunMasked(run))
    if not len(runs):
        return sizes
    nz = run.shape[0]
    tile = aligned(run.block, io.CHUNK)
    tiles = Grid(run.shape, (nz, tile[1], tile[2]))
    found = engine.run("gap fill", range(len(tiles)), _fill_task, runs, tiles,
                       str(run.path("segmentation.zarr")))
    out = dict(sizes)
    for seg_id, n in zip(np.concatenate([np.zeros(0, np.int64), *found.gather("ids")]),
                         np.concatenate([np.zeros(0, np.int64), *found.gather("counts")]),
                         strict=True):
        out[int(seg_id)] = out.get(int(seg_id), 0) + int(n)
    return out
