"""Rendering: slabs equal the whole volume; vesicle clouds stay in their cell."""

from __future__ import annotations

import numpy as np

from connectome_query.reconstruct import synth


def test_slabs_agree_with_whole_volume() -> None:
    plan = synth.make_plan(synth.SynthConfig((40, 48, 48), seed=5))
    whole = synth.render(plan, slab_depth=40)
    parts = synth.render(plan, slab_depth=7)
    assert np.array_equal(whole.labels, parts.labels)
    assert np.array_equal(whole.image, parts.image)
    assert np.array_equal(whole.clefts, parts.clefts)


def test_vesicles_stay_inside_their_presynaptic_cell() -> None:
    """Every vesicle-darkened voxel lies in the cell of its nearest vesicle, which is that
    vesicle's presynaptic neuron (nearest vesicle found here with a KD-tree)."""
    from scipy.spatial import cKDTree

    plan = synth.make_plan(synth.SynthConfig((48, 96, 96), seed=2))
    slab = synth.render(plan)
    mask = synth.vesicle_mask(plan, slab.labels, 0, slab.labels.shape[0])
    assert mask.sum() > 100
    vs = np.asarray(plan.config.voxel_size_zyx, float)
    at = np.argwhere(mask)
    _, nearest = cKDTree(plan.vesicles).query(at * vs)
    assert np.array_equal(slab.labels[mask], plan.vesicle_label[nearest].astype(np.uint64))
    # and the image is darker there than in the rest of the same cells
    cells = np.isin(slab.labels, np.unique(slab.labels[mask])) & ~mask & (slab.clefts == 0)
    assert float(slab.image[mask].mean()) < float(slab.image[cells].mean()) - 10
