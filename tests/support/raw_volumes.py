"""Raw volumes of the `raw` preset with their truth, in memory, for the front end's tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from connectome_query.reconstruct import synth
from connectome_query.reconstruct.align import stitch
from connectome_query.reconstruct.synth import raw


@dataclass
class RawVolume:
    undeformed: np.ndarray  # (z, y, x) uint8
    plan: raw.RawPlan
    tiles: list[np.ndarray]
    deformation: list[np.ndarray]
    truth_masks: list[np.ndarray]
    layout: stitch.Layout


def make_raw_volume(shape_zyx: tuple[int, int, int], seed: int) -> RawVolume:
    image = synth.synthesize(synth.SynthConfig(shape_zyx, seed=seed)).image
    cfg = raw.RawConfig(seed=seed)
    plan = raw.plan_raw(shape_zyx, cfg)
    tiles, ds, ms = [], [], []
    for z in range(shape_zyx[0]):
        t, d, m = raw.raw_section(plan, z, image[z])
        tiles.append(t)
        ds.append(d)
        ms.append(m)
    layout = stitch.Layout(cfg.grid, plan.tile_shape, cfg.overlap, shape_zyx[1:])
    return RawVolume(image, plan, tiles, ds, ms, layout)
