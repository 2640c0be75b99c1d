"""Scores of a run: consistent with one another."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def test_metrics_are_consistent(clean_run: tuple[Path, dict[str, Any]]) -> None:
    _, res = clean_run
    p = res["pipeline"]
    assert 0 <= p["nerl"] <= 1.0 + 1e-9
    assert p["voi"] == pytest.approx(p["voi_split"] + p["voi_merge"])
    assert 0 <= p["synapse_f1"] <= 1
