"""The generators' grey-level curve: quantile matching against an independent computation, the
curve as a network layer, and the polarity that makes thin structures dark."""

from __future__ import annotations

import numpy as np
import pytest

from connectome_query.reconstruct import synth
from connectome_query.reconstruct.adapt import intensity, model
from connectome_query.reconstruct.adapt import training as adapt_training

VS = (40.0, 16.0, 16.0)


@pytest.fixture(scope="module")
def a_img() -> np.ndarray:
    return synth.synthesize(synth.SynthConfig((16, 64, 64), VS, seed=7)).image


def test_matching_a_volume_to_its_negative_reverses_the_grey_levels(a_img: np.ndarray) -> None:
    neg = (255 - a_img).astype(np.uint8)
    x = intensity.knots()
    inside = (x > (a_img.min() / 127.5 - 1) + 0.1) & (x < (a_img.max() / 127.5 - 1) - 0.1)
    # order-reversing matching of the negative onto the image maps level v to 255 - v
    np.testing.assert_allclose(intensity.matched([neg], [a_img], True)[inside], -x[inside],
                               atol=0.04)
    # order-preserving matching of the image onto itself is the identity
    np.testing.assert_allclose(intensity.matched([a_img], [a_img], False)[inside], x[inside],
                               atol=0.04)


def test_a_fresh_generator_is_its_curve(a_img: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    values = -intensity.knots() * 0.5 + 0.1
    g = model.init(model.generator_layers(), rng)
    g[0] = intensity.layer(values)
    g[-1] = (np.zeros_like(g[-1][0]), g[-1][1])
    ad = model.Adapter(g, g, {})
    out = model.translate(ad, a_img)
    expect = model.to_uint8(np.interp(model.to_unit(a_img), intensity.knots(), values))
    assert np.abs(out.astype(int) - expect.astype(int)).max() <= 1


def test_thin_dark_structure_picks_the_polarity(a_img: np.ndarray) -> None:
    neg = (255 - a_img).astype(np.uint8)
    b_img = synth.synthesize(synth.SynthConfig((16, 64, 64), VS, seed=8, style="b")).image
    assert intensity.thin_dark_ratio(model.to_unit(a_img)) > 1
    cfg = adapt_training.TrainConfig(crop=(2, 32, 32))
    for b, inverted in ((a_img, False), (neg, True), (b_img, True)):
        state = adapt_training.fresh_state([a_img], [b], cfg)
        assert state["init"]["inverted"] is inverted
