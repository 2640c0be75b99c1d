"""The report's ERL table comes from the run's blockwise scoring (erl_cells.parquet) without
reading the truth's skeleton table; a run directory scored before that file existed still gets
the same table, from the skeleton table and the segmentation."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from connectome_query.reconstruct.engine.scoring import ERL_CELLS
from connectome_query.reconstruct.report.build import report_data


def test_erl_table_from_the_scoring_equals_the_one_from_the_skeletons(
        clean_run: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    run_dir, _ = clean_run
    assert (run_dir / ERL_CELLS).is_file()
    old = tmp_path / "run"  # as a run scored before ERL_CELLS: everything else copied
    shutil.copytree(run_dir, old, ignore=shutil.ignore_patterns("engine", ERL_CELLS))
    new_d, old_d = report_data(run_dir), report_data(old)
    assert "skeletons" not in new_d["truth"] and "skeletons" in old_d["truth"]
    got, want = (d["erl"].set_index("cell").sort_index() for d in (new_d, old_d))
    assert len(want) > 3 and (want["erl_nm"] > 0).any()
    np.testing.assert_array_equal(got.index, want.index)
    np.testing.assert_allclose(got["cable_nm"], want["cable_nm"], rtol=1e-12)
    np.testing.assert_allclose(got["erl_nm"], want["erl_nm"], rtol=1e-12)
    np.testing.assert_array_equal(got["merged"], want["merged"])
    for kind in ("splits", "merges"):
        pd.testing.assert_frame_equal(new_d[kind], old_d[kind])
