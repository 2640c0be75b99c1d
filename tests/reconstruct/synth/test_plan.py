"""The plan: deterministic in the seed, with the biology the benchmarks look for planted."""

from __future__ import annotations

import numpy as np
import pandas as pd

from connectome_query.reconstruct import synth
from connectome_query.schema.vocabulary import CHANDELIER, PYRAMIDAL, Compartment


def test_deterministic_and_seed_dependent() -> None:
    cfg = synth.SynthConfig((24, 48, 48), seed=3)
    a = synth.render(synth.make_plan(cfg))
    b = synth.render(synth.make_plan(cfg))
    c = synth.render(synth.make_plan(synth.SynthConfig((24, 48, 48), seed=4)))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.image, c.image)


def test_planted_biology() -> None:
    plan = synth.make_plan(synth.SynthConfig((64, 128, 128), seed=2))
    classes = set(plan.neuron_class.values())
    assert classes == {PYRAMIDAL, CHANDELIER}
    comps = set(plan.stamp_comp.tolist())
    assert {Compartment.SOMA, Compartment.AXON, Compartment.AIS, Compartment.DENDRITE} <= comps
    pairs = pd.Series(list(zip(plan.synapse_pre.tolist(), plan.synapse_post.tolist(),
                               strict=True))).value_counts()
    assert pairs.max() >= 3, "multi-synaptic pairs are planted"
