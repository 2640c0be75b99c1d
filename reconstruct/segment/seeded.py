"""Our segmentation of a volume: seeds, growth, rescue, region graph, agglomeration, size filter.

Seeds are the in-plane interiors (all four in-plane affinities above `seed_threshold`) eroded by
an anisotropic ball of radius `seed_distance_nm`, so a single leaky boundary voxel cannot join two
cells; they are labelled as connected components, linking sections only through strong z
affinities. Seeds grow `grow_layers` layers; strongly linked pieces no seed reached are rescued as
fragments of their own; growth resumes; fragments are agglomerated by mean affinity; segments under
`min_size` voxels are dropped. Every stage after the scan works on the active voxels alone, and
the label volume is written once, at the end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numba
import numpy as np

from connectome_query.reconstruct.segment.active import scan
from connectome_query.reconstruct.segment.agglomeration import merge
from connectome_query.reconstruct.segment.components import components
from connectome_query.reconstruct.segment.contacts import of_active
from connectome_query.reconstruct.segment.erosion import Ball
from connectome_query.reconstruct.segment.growth import grow_layers, mark_unreached
from connectome_query.reconstruct.segment.layout import as_float32, check_affinities
from connectome_query.reconstruct.segment.numbering import final_ids, merge_table, write_segments


@dataclass(frozen=True)
class SegParams:
    """Knobs of the seeded segmentation. Defaults chosen on the shipped affinity network's
    predictions for nine synthetic 64^3 volumes and checked on six others (BENCHMARKS.md)."""

    seed_threshold: float = 0.8
    seed_distance_nm: float = 20.0
    grow_threshold: float = 0.7
    merge_threshold: float = 0.5
    prior_faces: float = 0.0
    grow_layers: int = 3
    min_size: int = 200
    min_seed: int = 4

    def __post_init__(self) -> None:
        # seeds link only where growth could also pass (one set of edge flags serves both)
        if self.seed_threshold < self.grow_threshold:
            raise ValueError(f"seed_threshold ({self.seed_threshold}) must be at least "
                             f"grow_threshold ({self.grow_threshold})")


class _Laps:
    """Seconds of each stage, into `timings` when it is given."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings
        self.t = time.perf_counter()

    def __call__(self, stage: str) -> None:
        if self.timings is not None:
            now = time.perf_counter()
            self.timings[stage] = now - self.t
            self.t = now


def segment_volume(affs: np.ndarray, voxel_size_zyx: tuple[float, float, float],
                   p: SegParams, min_size: int,
                   timings: dict[str, float] | None = None) -> tuple[np.ndarray, int]:
    """Our segmentation of float32 affinities: (uint64 labels 1..N, N). `timings`, when
    given, gets the seconds of each stage."""
    lap = _Laps(timings)
    out = np.empty(affs.shape[1:], np.uint64)  # the stages' arrays live in it until the end
    pool = out.reshape(-1).view(np.uint8)
    act = scan(affs, p.grow_threshold, p.seed_threshold,
               Ball.of(voxel_size_zyx, p.seed_distance_nm, affs.shape[3]), pool)
    labels = np.zeros(len(act.flags), np.int32)  # fewer than 2**31 positions
    scratch = act.scratch  # shared by the stages (union-find parents, growth queues)
    lap("scan (edge flags, active voxels, their links, seed erosion)")
    n_seeds = components(act, p.seed_threshold, max(p.min_seed, 1), labels, scratch[:2],
                         linked=True)
    lap("seeds (components)")
    thr = np.float32(p.grow_threshold)
    grow_layers(labels, act.flags, act.neighbours, act.affinity, thr, int(p.grow_layers),
                *scratch)
    lap(f"grow ({p.grow_layers} layers)")
    mark_unreached(labels, act.flags, act.neighbours)
    n_fragments = n_seeds + components(act, p.grow_threshold, max(p.min_seed, 2), labels,
                                       scratch[:2], n_seeds, sparse=True)
    lap("rescue")
    grow_layers(labels, act.flags, act.neighbours, act.affinity, thr, 64, *scratch)
    lap("grow (rest)")
    pairs, sums, counts = of_active(act, labels)
    lap("region graph")
    fragments, representatives = merge(pairs, sums, counts, p.merge_threshold, p.prior_faces)
    lap("agglomerate")
    lut = merge_table(fragments, representatives, n_fragments + 1)
    new = final_ids(labels, lut, int(min_size), max(2, numba.get_num_threads()))
    write_segments(labels, lut, new, act.rows, act.xs, out)
    lap("size filter, labels written")
    return out, int(new.max()) if len(new) else 0


def seeded_segmentation(affs: np.ndarray, voxel_size_zyx: tuple[float, float, float],
                        params: SegParams | None = None,
                        timings: dict[str, float] | None = None) -> np.ndarray:
    """Our segmentation: seeds, growth, mean-affinity agglomeration, size filter (uint64,
    1..N in order of first appearance). `timings`, when given, gets each stage's seconds."""
    check_affinities(affs)
    p = params or SegParams()
    return segment_volume(as_float32(affs), voxel_size_zyx, p, int(p.min_size), timings)[0]

