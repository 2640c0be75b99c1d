"""The defect flags of the front end's masks, one bit each (uint8 per voxel).

The same flags mark the generator's true defects (`synth.raw`) and the ones the front end finds
(`align.defects`); later stages read them from the EM directory's `defects.zarr` and take no
decision (flow, synapse, merge) from a voxel whose mask is not zero.
"""

from __future__ import annotations

from enum import IntFlag

import numpy as np


class Defect(IntFlag):
    """What is wrong with a voxel of a section."""

    FOLD = 1  # a dark band of folded tissue; tissue displaced across it
    CRACK = 2  # a bright gap where the section tore; tissue pulled apart
    BLUR = 4  # the section is out of focus
    MISSING = 8  # the section (or a tile's area) holds no tissue
    NO_TISSUE = 16  # outside the imaged tissue (borders after warping)
    FILLED = 32  # the voxel was filled from aligned neighbours


LINE_DEFECTS = Defect.FOLD | Defect.CRACK
SECTION_DEFECTS = Defect.BLUR | Defect.MISSING
NO_DECISION = LINE_DEFECTS | SECTION_DEFECTS | Defect.NO_TISSUE
"""Flags of voxels that later stages take no decision from (filled ones included: what was
filled there is a guess from the neighbours)."""


def has(mask: np.ndarray, flags: Defect | int) -> np.ndarray:
    """Boolean array: where any of `flags` is set."""
    return (mask & np.uint8(int(flags))) != 0
