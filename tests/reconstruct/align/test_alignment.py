"""Elastic alignment of a raw volume measured against the truth (the issue's bar).

The volume (seed 23) is held out: the aligner's settings were chosen on seeds 3, 11 and 17."""

from __future__ import annotations

import numpy as np
import pytest

from connectome_query.reconstruct import synth
from connectome_query.reconstruct.align import evaluate, flow, trial
from tests.support.raw_volumes import make_raw_volume

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def result() -> trial.TrialResult:
    v = make_raw_volume((16, 256, 256), seed=23)
    return trial.run_trial(v.undeformed, v.plan.config)


@pytest.fixture(scope="module")
def residual(result) -> evaluate.Residual:
    return result.residual


def test_stack_holds_together_across_missing_and_blurred_sections(residual):
    # aligned to one reference by intensity the stack of this seed stood at RMS 15.1, p99 31.1;
    # no pixel is off by tens of pixels (those were true positions read half from uncovered
    # pixels at the stitched section's edge: 116 px on this seed)
    assert residual.pixels > 100_000
    assert residual.rms <= 3.5 and residual.p99 <= 8.0 and residual.max <= 20.0, residual


def test_residual_up_to_smooth_motion_along_z_is_within_the_bar(result):
    """Up to motion along z smooth over 2 sections (sd), what the flows cannot tell from the
    tissue's own drift between single sections, the residual is within the bar."""
    smooth = result.smooth[2.0]
    assert smooth.pixels > 100_000
    assert smooth.rms <= 1.0 and smooth.p99 <= 3.0, smooth


@pytest.mark.xfail(strict=True, reason="strict residual RMS 1.6 px, p99 4.2 px on this seed "
                                       "(0.89 px up to motion smooth over 2 sections): the "
                                       "images show each section's shift and linear shape "
                                       "plus the tissue's own drift along z, and from that "
                                       "sum the best estimate for this volume's 16 sections "
                                       "and missing ones leaves 1.13 px from those two parts "
                                       "alone (bench/reconstruct/align_bound.py); see "
                                       "BENCHMARKS.md")
def test_residual_on_valid_tissue_is_within_the_bar(residual):
    assert residual.pixels > 100_000
    assert residual.rms <= 1.0 and residual.p99 <= 3.0, residual


def test_undeformed_tissue_moves_between_sections():
    """Why the bar is not met: on the undeformed volume, where the true flow is 0 everywhere,
    the flow between sections is not 0, and grows with their distance."""
    u = synth.synthesize(synth.SynthConfig((16, 192, 192), seed=17)).image.astype(np.float32)
    inner = np.zeros(flow.grid_shape(u.shape[1:], 32), bool)
    inner[1:-1, 1:-1] = True

    def median_flow(d: int) -> float:
        e = []
        for z in range(0, 8 - d):
            f = flow.section_flow(u[z], u[z + d], 32, 128, 24)
            e.append(np.linalg.norm(f.yx[f.valid & inner], axis=-1))
        return float(np.median(np.concatenate(e)))

    near, far = median_flow(1), median_flow(3)
    assert 0.3 < near < far, (near, far)
