"""`connectome report` on a real reconstruction run: the page states the run's own metrics,
counts and timings, and renders offline in Chromium with every picture drawn."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from connectome_query.cli.main import app
from tests.support import browser as bs


@pytest.mark.slow
def test_report_of_a_run(clean_run: tuple[Path, dict[str, Any]], tmp_path: Path,
                         browser: Any) -> None:
    run_dir, _ = clean_run
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    segments = pd.read_parquet(run_dir / "segments.parquet")
    synapses = pd.read_parquet(run_dir / "synapses.parquet")
    with bs.visit(browser) as seen:
        seen.page.goto(out.as_uri())
        images = seen.page.evaluate(
            "Array.from(document.images).map(i => [i.closest('figure').id, i.naturalWidth])")
        tables = seen.page.evaluate("""Object.fromEntries(Array.from(
            document.querySelectorAll('table')).map(t => [t.id, Array.from(t.rows)
            .map(r => Array.from(r.cells).map(c => c.innerText.trim()))]))""")
        seen.screenshot("report")
        seen.assert_offline()
    assert not seen.console_errors
    assert {"slices", "sizes", "skeleton-lengths", "confidence", "erl-bars"} <= \
        {fid for fid, _ in images}
    assert all(width > 0 for _, width in images)
    counts = dict(zip(tables["counts"][0], tables["counts"][1], strict=True))
    assert int(counts["segments"]) == len(segments)
    assert int(counts["synapses"]) == len(synapses)
    header, *rows = tables["metrics"]
    shown = {r[0]: r[header.index("pipeline")] for r in rows}
    for name in ("voi", "arand", "erl_nm", "synapse_f1"):
        assert float(shown[name]) == pytest.approx(metrics["pipeline"][name], rel=1e-3)
    erl = tables["erl"]
    cable = [float(r[1]) for r in erl[1:]]
    per_cell = [float(r[2]) for r in erl[1:]]
    weighted = sum(c * e for c, e in zip(cable, per_cell, strict=True)) / sum(cable)
    assert weighted == pytest.approx(metrics["pipeline"]["erl_nm"], rel=1e-3)


def test_report_names_what_is_missing(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 1
    assert "run.json" in result.output
