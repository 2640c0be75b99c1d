"""Synthetic EM volumes with ground truth (pure logic, no I/O).

A volume is described by a `Plan` made once from the seed (`plan`, with neurites packed so that
they only touch, `packing`); `render_slab` turns it into image, segmentation, compartments and
clefts for a range of sections (`rendering`), and `truth` makes the ground-truth tables.
"""

from __future__ import annotations

from connectome_query.reconstruct.synth.packing import relax
from connectome_query.reconstruct.synth.plan import AIS_LENGTH_NM, Plan, SynthConfig, make_plan
from connectome_query.reconstruct.synth.rendering import (
    Slab,
    render,
    render_box,
    render_slab,
    vesicle_mask,
)
from connectome_query.reconstruct.synth.truth import (
    MIN_TRUTH_CLEFT_VOXELS,
    segment_rows,
    stamp_voxels,
    synapse_rows,
    truth_skeleton_nodes,
)


def synthesize(cfg: SynthConfig) -> Slab:
    """Plan and render a whole small volume in memory (training data, tests)."""
    return render(make_plan(cfg))


__all__ = [
    "AIS_LENGTH_NM",
    "MIN_TRUTH_CLEFT_VOXELS",
    "Plan",
    "Slab",
    "SynthConfig",
    "make_plan",
    "relax",
    "render",
    "render_box",
    "render_slab",
    "segment_rows",
    "stamp_voxels",
    "synapse_rows",
    "synthesize",
    "truth_skeleton_nodes",
    "vesicle_mask",
]
