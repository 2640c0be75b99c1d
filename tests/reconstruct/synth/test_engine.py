"""`connectome synth-em` on the engine: blocks rendered by Dask worker processes make the volume
that one process makes slab by slab (`synthetic_em.write_synthetic_em`), array for array, row
for row."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorstore as ts
from typer.testing import CliRunner

from connectome_query.cli.main import app
from connectome_query.reconstruct import io, synth, synthetic_em
from connectome_query.reconstruct.engine.cluster import ClusterSpec
from connectome_query.reconstruct.engine.synth import WORK, write_synthetic

ARRAYS = ("image.zarr", "truth/segmentation.zarr", "truth/compartments.zarr",
          "truth/clefts.zarr")
COPIES = ("image.precomputed", "truth/segmentation.precomputed")


def _same_volume(a: Path, b: Path) -> None:
    for p in ARRAYS:
        want, got = (io.read_block(io.open_zarr(d / p), (slice(None),) * 3, d / p)
                     for d in (a, b))
        assert np.array_equal(want, got), p
    for p in COPIES:
        got = [ts.open({"driver": "neuroglancer_precomputed",
                        "kvstore": {"driver": "file", "path": str(d / p)}}).result().read().result()
               for d in (a, b)]
        assert np.array_equal(*got), p
    for t in ("segments", "synapses", "skeletons"):
        pd.testing.assert_frame_equal(pd.read_parquet(a / "truth" / f"{t}.parquet"),
                                      pd.read_parquet(b / "truth" / f"{t}.parquet"))
    assert json.loads((a / "volume.json").read_text()) == \
        json.loads((b / "volume.json").read_text())
    assert sorted(p.name for p in (a / "truth" / "skeletons").iterdir()) == \
        sorted(p.name for p in (b / "truth" / "skeletons").iterdir())


@pytest.mark.slow
def test_blocks_on_two_worker_processes_equal_one_process(tmp_path: Path,
                                                          cluster: ClusterSpec) -> None:
    """Blocks that do not divide the volume, on the shared cluster of two worker processes;
    the noisy preset (shifted and missing sections reach across block edges)."""
    cfg = synth.SynthConfig((20, 80, 104), seed=2, preset="noisy")
    synthetic_em.write_synthetic_em(tmp_path / "one", cfg)
    write_synthetic(tmp_path / "blocks", cfg, cluster, block=(7, 40, 48))
    truth = pd.read_parquet(tmp_path / "one" / "truth" / "synapses.parquet")
    assert len(truth) > 3  # a volume with clefts across blocks, not an empty one
    _same_volume(tmp_path / "one", tmp_path / "blocks")
    assert not (tmp_path / "blocks" / WORK).exists()


def test_cli_options(tmp_path: Path) -> None:
    """synth-em takes the engine's options; a bad block is named."""
    r = CliRunner().invoke(app, ["synth-em", str(tmp_path / "x"), "--size", "40,32,16",
                                 "--block", "16,32,40", "--quiet"])
    assert r.exit_code == 0, r.output
    synthetic_em.write_synthetic_em(tmp_path / "one", synth.SynthConfig((16, 32, 40)))
    _same_volume(tmp_path / "one", tmp_path / "x")
    r = CliRunner().invoke(app, ["synth-em", str(tmp_path / "y"), "--block", "8,0,8"])
    assert r.exit_code == 2 and "--block" in r.output
