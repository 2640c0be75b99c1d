"""Style B: the same planned tissue imaged otherwise. The truth is style A's to the voxel; the
image differs in the statistics the style states (contrast sign, grey-level range, fine-scale
energy), each measured here on the truth's own membranes and cell interiors."""

from __future__ import annotations

import numpy as np
import pytest

from connectome_query.reconstruct import synth


def _membrane_contrast(img: np.ndarray, labels: np.ndarray) -> float:
    """Mean grey level on in-plane cell boundaries minus inside the cells."""
    edge = np.zeros(labels.shape, bool)
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[:, :, 1:] |= labels[:, :, 1:] != labels[:, :, :-1]
    edge &= labels != 0
    inner = (labels != 0) & ~edge
    im = img.astype(np.float64)
    return float(im[edge].mean() - im[inner].mean())


def _fine_energy(img: np.ndarray) -> float:
    """Energy of the in-plane Laplacian relative to the variance (high spatial frequencies)."""
    im = img.astype(np.float64)
    lap = (4 * im[:, 1:-1, 1:-1] - im[:, 2:, 1:-1] - im[:, :-2, 1:-1] - im[:, 1:-1, 2:]
           - im[:, 1:-1, :-2])
    return float((lap ** 2).mean() / im.var())


@pytest.mark.parametrize("preset", ["clean", "noisy"])
def test_same_seed_same_truth_other_image(preset: str) -> None:
    cfg = dict(shape_zyx=(24, 96, 96), preset=preset, seed=4)
    a = synth.synthesize(synth.SynthConfig(**cfg))  # type: ignore[arg-type]
    b = synth.synthesize(synth.SynthConfig(**cfg, style="b"))  # type: ignore[arg-type]
    assert np.array_equal(a.labels, b.labels)
    assert np.array_equal(a.clefts, b.clefts)
    assert np.array_equal(a.compartments, b.compartments)
    assert np.array_equal(a.cleft_stats, b.cleft_stats)
    # membranes dark in A, bright in B
    assert _membrane_contrast(a.image, a.labels) < -30
    assert _membrane_contrast(b.image, b.labels) > 10
    # a compressed grey-level range (sections that are not missing)
    good = [z for z in range(a.image.shape[0]) if a.image[z].std() > 2]
    ra = np.subtract(*np.percentile(a.image[good], [99, 1]))
    rb = np.subtract(*np.percentile(b.image[good], [99, 1]))
    assert rb < 0.9 * ra
    # wider blur and smoother noise: less energy at the finest scale
    assert _fine_energy(b.image) < 0.5 * _fine_energy(a.image)


def test_style_b_slabs_agree_and_bad_style_is_named() -> None:
    plan = synth.make_plan(synth.SynthConfig((24, 48, 48), seed=5, style="b"))
    assert np.array_equal(synth.render(plan, slab_depth=24).image,
                          synth.render(plan, slab_depth=5).image)
    with pytest.raises(ValueError, match="style"):
        synth.SynthConfig((24, 48, 48), style="c")
