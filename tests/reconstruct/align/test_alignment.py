"""Elastic alignment of a raw volume measured against the truth (the issue's bar)."""

from __future__ import annotations

import pytest

from connectome_query.reconstruct.align import evaluate, trial
from tests.support.raw_volumes import make_raw_volume

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def residual() -> evaluate.Residual:
    v = make_raw_volume((16, 256, 256), seed=11)
    return trial.run_trial(v.undeformed, v.plan.config).residual


@pytest.mark.xfail(strict=True, reason="the stack falls apart where sections are aligned "
                                       "across missing or blurred ones (few good flow nodes "
                                       "on the sparse synthetic cells): residual RMS about "
                                       "9 px, see BENCHMARKS.md")
def test_residual_on_valid_tissue_is_within_the_bar(residual):
    assert residual.pixels > 100_000
    assert residual.rms <= 1.0 and residual.p99 <= 3.0, residual
