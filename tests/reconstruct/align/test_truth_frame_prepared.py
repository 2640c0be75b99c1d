"""`connectome prepare` on a synthetic raw directory writes the truth in the aligned frame, and
that truth fits the prepared image better than the undeformed truth does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from connectome_query.cli.main import app
from connectome_query.reconstruct import io
from connectome_query.reconstruct.align.masks import NO_DECISION, has

pytestmark = pytest.mark.slow


def _read(path: Path) -> np.ndarray:
    return np.asarray(io.open_zarr(path).read().result())


def _contrast(image: np.ndarray, cells: np.ndarray, use: np.ndarray) -> float:
    """Mean grey level inside cells minus outside them (membranes and space between cells are
    dark in style A), over `use`."""
    return float(image[use & cells].mean() - image[use & ~cells].mean())


def test_prepare_carries_the_truth_into_the_aligned_frame(tmp_path):
    raw, em = tmp_path / "raw", tmp_path / "em"
    runner = CliRunner()
    r = runner.invoke(app, ["synth-em", str(raw), "--size", "160,160,16", "--preset", "raw",
                            "--seed", "43", "--quiet"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["prepare", str(raw), str(em), "--stride", "16", "--patch", "64",
                            "--quiet"])
    assert r.exit_code == 0, r.output + str(r.exception or "")
    assert "truth in the aligned frame" in r.output
    image = _read(em / "image.zarr").astype(np.float64)
    aligned = _read(em / "truth" / "segmentation.zarr")
    known = _read(em / "truth" / "known.zarr").astype(bool)
    undeformed = _read(raw / "truth" / "undeformed" / "truth" / "segmentation.zarr")
    use = known & ~has(_read(em / "defects.zarr"), NO_DECISION)
    assert use.mean() > 0.4
    assert not aligned[~known].any()
    # the cells of the truth carried into the frame lie where the prepared image shows cells;
    # the undeformed truth, off by the reference section's shift and each section's residual,
    # clearly less (seed 43: 32 against 23)
    ours = _contrast(image, aligned != 0, use)
    before = _contrast(image, undeformed != 0, use)
    assert ours > 1.3 * before and ours > 10, (ours, before)
    # the tables: points moved, not found ones dropped; every moved node inside the volume
    sk = pd.read_parquet(em / "truth" / "skeletons.parquet")
    und = pd.read_parquet(raw / "truth" / "undeformed" / "truth" / "skeletons.parquet")
    assert 0.4 * len(und) < len(sk) < len(und)
    assert ((sk[["x", "y"]] >= 0) & (sk[["x", "y"]] <= 159 * 16)).all().all()
    assert io.read_truth_tables(em, image.shape) is not None
