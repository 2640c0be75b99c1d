"""Segmentation from affinities (pure logic, no I/O): ours, block by block, and a naive baseline.

Affinities use the waterz layout: `affs[c, z, y, x]` links a voxel to its -1 neighbour along
axis c. The steps, one module each: `active` (flag and index the voxels that can be labelled),
`erosion` (seed cores), `components`, `growth`, `contacts` (the region graph), `agglomeration`,
`numbering` (size filter, final ids); `seeded` runs them on a volume; `blocks` runs them on one
3-D block at a time and `stitch` joins the blocks into the whole volume's answer; `baseline`
thresholds and labels components.

The hot path is numba (`@njit(cache=True)`; the first call in a fresh environment compiles, later
processes load the cache). Numba caches a kernel per file and does not notice a change to a kernel
it calls in another module (`active` calls `erosion` and `components`): clear `__pycache__` after
editing those. Nothing depends on the number of threads.
"""

from __future__ import annotations

import warnings

from numba.core.errors import NumbaPerformanceWarning

from connectome_query.reconstruct.segment.active import erode
from connectome_query.reconstruct.segment.agglomeration import agglomerate
from connectome_query.reconstruct.segment.baseline import threshold_components
from connectome_query.reconstruct.segment.contacts import region_graph
from connectome_query.reconstruct.segment.growth import grow
from connectome_query.reconstruct.segment.numbering import relabel, size_filter
from connectome_query.reconstruct.segment.seeded import SegParams, seeded_segmentation

# Numba compiles a plain loop nest several times faster under `parallel=True` even where no
# loop is a prange (a full growth pass over 256^3 voxels, one thread: 0.26 s -> 0.06 s), so the
# kernels that must stay sequential (union-find, frontier queues, first-appearance numbering)
# carry the flag too, and numba's note that it found nothing to parallelise in them is silenced.
warnings.filterwarnings("ignore", category=NumbaPerformanceWarning,
                        message=r"(?s)\s*The keyword argument 'parallel=True' was specified "
                                r"but no transformation for parallel execution was possible")

__all__ = [
    "SegParams",
    "agglomerate",
    "erode",
    "grow",
    "region_graph",
    "relabel",
    "seeded_segmentation",
    "size_filter",
    "threshold_components",
]
