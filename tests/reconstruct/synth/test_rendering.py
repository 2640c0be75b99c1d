"""Rendering: slabs equal the whole volume; vesicle clouds stay in their cell."""

from __future__ import annotations

import numpy as np
import pytest

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


@pytest.mark.parametrize("style", ["a", "b"])
def test_boxes_of_large_sections_agree_with_slabs(style: str) -> None:
    """Sections over `WHOLE_NOISE` px draw their noise in tiles: 3-D boxes that do not divide
    the volume still make the image of whole sections, shifted sections included."""
    from connectome_query.reconstruct.synth.rendering import WHOLE_NOISE

    plan = synth.make_plan(synth.SynthConfig((16, 40, WHOLE_NOISE + 44), seed=3,
                                             preset="noisy", style=style))
    plan.shifts[3] = (-7, 6)  # a shifted section reaches across box edges
    whole = synth.render_slab(plan, 0, 8)
    image = np.zeros_like(whole.image)
    labels = np.zeros_like(whole.labels)
    for z0, y0, x0 in np.ndindex(2, 2, 3):
        lo = (z0 * 5, y0 * 23, x0 * 111)
        hi = (min(lo[0] + 5, 8), min(lo[1] + 23, 40), min(lo[2] + 111, WHOLE_NOISE + 44))
        box = synth.render_box(plan, lo, hi)
        sl = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        image[sl], labels[sl] = box.image, box.labels
    assert np.array_equal(labels, whole.labels)
    assert np.array_equal(image, whole.image)


def test_tiled_noise_has_unit_spread() -> None:
    """The tiled noise is scaled by the spread blurred white noise has (computed from the
    kernel); measured over a large section it is 1, as the whole-section noise is."""
    from connectome_query.reconstruct.synth.rendering import _noise

    for sigma in (0.8, 1.5, 2.5, 6.0):
        n = _noise(0, 5, (1024, 1024), (0, 0), (1024, 1024), sigma)
        assert abs(float(n.std()) - 1.0) < 0.03 * (1 + sigma / 3), sigma
        assert abs(float(n.mean())) < 0.05 * (1 + sigma / 3)
