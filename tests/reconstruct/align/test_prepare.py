"""`connectome synth-em --preset raw` and `connectome prepare` on disk, good and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from typer.testing import CliRunner

from connectome_query.cli.main import app
from connectome_query.reconstruct import io
from connectome_query.reconstruct.align.masks import Defect, has

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("raw") / "raw"
    r = CliRunner().invoke(app, ["synth-em", str(d), "--size", "160,160,16", "--preset",
                                 "raw", "--seed", "7", "--quiet"])
    assert r.exit_code == 0, r.output
    return d


def test_synth_raw_refuses_sections_too_small_for_its_tiles_and_writes_nothing(tmp_path):
    d = tmp_path / "raw"
    r = CliRunner().invoke(app, ["synth-em", str(d), "--size", "96,96,16", "--preset", "raw",
                                 "--quiet"])
    assert r.exit_code == 2, r.output
    assert "96x96 px" in r.output and "need at least" in r.output
    assert not d.exists()


def _prepare(raw: Path, em: Path) -> tuple[int, str]:
    r = CliRunner().invoke(app, ["prepare", str(raw), str(em), "--stride", "16", "--patch",
                                 "64", "--quiet"])
    return r.exit_code, r.output + str(r.exception or "")


def test_prepare_writes_the_aligned_repaired_volume(raw_dir, tmp_path):
    em = tmp_path / "em"
    code, out = _prepare(raw_dir, em)
    assert code == 0, out
    truth = json.loads((raw_dir / "truth" / "raw_truth.json").read_text())
    info = io.read_volume_info(em)
    image = io.read_image(em, info)
    assert image.shape == (16, 160, 160)
    masks = np.asarray(io.open_zarr(em / "defects.zarr").read().result())
    for z in truth["missing_sections"]:  # found, reported, filled from neighbours
        assert has(masks[z], Defect.MISSING).all()
        inside = ~has(masks[z], Defect.NO_TISSUE)
        assert inside.mean() > 0.6
        assert np.array_equal(has(masks[z], Defect.FILLED), inside)
        assert image[z].std() > 10
        assert f"section {z}: missing" in out
    for z in truth["blurred_sections"]:
        assert f"section {z}: blur" in out
    assert "too far for its flows" not in out  # runs of at most 2 here
    # one contrast for the stack: a section's good tissue sits at the grey of the others',
    # whatever was filled or left unfilled in it (the network sees sections side by side)
    tissue = [np.median(image[z][masks[z] == 0]) for z in range(16) if (masks[z] == 0).any()]
    assert max(tissue) - min(tissue) < 25, np.round(tissue)
    # a section filled whole from its neighbours at that grey too (black borders outside the
    # neighbours' imaged tissue are no source for the fill)
    for z in truth["missing_sections"] + truth["blurred_sections"]:
        fill = has(masks[z], Defect.FILLED)
        assert abs(np.median(image[z][fill]) - np.median(tissue)) < 25, z
    unfilled = has(masks, Defect.MISSING) & ~has(masks, Defect.FILLED | Defect.NO_TISSUE)
    if unfilled.any():  # nothing to fill from: the good pixels' grey, never black
        grey = [np.median(image[z][masks[z] == 0]) for z in range(16)]
        for z in np.unique(np.nonzero(unfilled)[0]):
            assert np.abs(image[z][unfilled[z]].astype(float) - grey[z]).max() <= 40
    maps = io.open_zarr(em / "maps.zarr")
    assert maps.shape[0] == 16 and maps.shape[-1] == 2
    report = json.loads((em / "prepare.json").read_text())
    assert len(report["section_flags"]) == 16


def test_a_missing_tile_is_reported_and_masked(raw_dir, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(raw_dir, raw, ignore=shutil.ignore_patterns("truth"))
    (raw / "tiles" / "s00002" / "r01_c01.png").unlink()
    code, out = _prepare(raw, tmp_path / "em")
    assert code == 0, out
    assert "section 2, tile (row 1, col 1): r01_c01.png is missing" in out.replace("\n", " ")


def test_a_section_after_three_missing_ones_is_reported(raw_dir, tmp_path):
    """Sections 7 and 8 are missing; section 9 imaged blank as well makes a run of three, and
    section 10, aligned across it, is reported as uncertain."""
    truth = json.loads((raw_dir / "truth" / "raw_truth.json").read_text())
    assert {7, 8} <= set(truth["missing_sections"]) and 9 not in truth["missing_sections"]
    raw = tmp_path / "raw"
    shutil.copytree(raw_dir, raw, ignore=shutil.ignore_patterns("truth"))
    shutil.rmtree(raw / "tiles" / "s00009")
    shutil.copytree(raw / "tiles" / "s00008", raw / "tiles" / "s00009")
    code, out = _prepare(raw, tmp_path / "em")
    assert code == 0, out
    flat = " ".join(out.split())
    assert "section 9: missing" in flat
    assert "section 10: aligned to section 6, 4 sections back" in flat
    assert "too far for its flows to be trusted" in flat


def test_a_tile_of_the_wrong_size_is_refused_naming_it(raw_dir, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(raw_dir, raw, ignore=shutil.ignore_patterns("truth"))
    path = raw / "tiles" / "s00004" / "r00_c01.png"
    iio.imwrite(path, np.asarray(iio.imread(path))[:-3])
    code, out = _prepare(raw, tmp_path / "em")
    assert code == 1
    flat = " ".join(out.split())
    assert "section 4, tile (row 0, col 1)" in flat and "r00_c01.png" in flat
    assert not (tmp_path / "em" / "image.zarr").exists()


def test_a_broken_description_is_refused_naming_the_field(raw_dir, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(raw_dir, raw, ignore=shutil.ignore_patterns("truth", "tiles"))
    desc = json.loads((raw / "raw.json").read_text())
    desc["overlap"] = 10_000
    (raw / "raw.json").write_text(json.dumps(desc))
    code, out = _prepare(raw, tmp_path / "em")
    assert code == 1 and "'overlap'" in out
