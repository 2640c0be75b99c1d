"""The front end's per-section passes on the Dask engine: the same result as stitching each
section in one process, resumable, and refusing an EM_DIR prepared otherwise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from connectome_query.reconstruct import io
from connectome_query.reconstruct.align import defects as defects_
from connectome_query.reconstruct.align import (
    elastic,
    flow,
    flows_engine,
    prepare,
    rawdir,
    sections_engine,
    stitch,
)
from connectome_query.reconstruct.align.masks import SECTION_DEFECTS, Defect, has
from connectome_query.reconstruct.engine.cluster import ClusterSpec, connect
from connectome_query.reconstruct.engine.manifest import Manifest
from connectome_query.reconstruct.engine.runner import Engine
from connectome_query.reconstruct.errors import ReconstructError

SECTIONS = 6


@pytest.fixture(scope="module")
def raw_dir(raw_volume, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("raw")
    for z in range(SECTIONS):
        rawdir.write_section_tiles(d, z, raw_volume.tiles[z])
    rawdir.write_raw_info(d, SECTIONS, raw_volume.layout, (16.0, 16.0, 40.0))
    return d


def _stitch_pass(raw: Path, em: Path, spec: ClusterSpec,
                 lines: bool = False) -> list[defects_.Quality]:
    info = rawdir.read_raw_info(raw)
    manifest = Manifest(em)
    manifest.open(sections_engine.identity(info, prepare.PrepareConfig()))
    flat = stitch.flat_field([rawdir.read_section_tiles(info, z)[0] for z in range(SECTIONS)])
    np.save(manifest.root / "flat.npy", flat)
    sections_engine.create_arrays(em, (SECTIONS, *info.layout.section_shape), {})
    job = sections_engine.SectionJob(info, str(em), str(manifest.root / "flat.npy"))
    with connect(spec) as client:
        client.run(sections_engine.forget)
        sections_engine.forget()
        engine = Engine(client, manifest)
        qualities = sections_engine.stitch_sections(engine, job, SECTIONS)[0]
        if lines:
            flags = defects_.classify_sections(qualities)
            sections_engine.find_lines(engine, job, [z for z in range(SECTIONS) if not flags[z]])
        return qualities


def _one_process(raw: Path) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, list]:
    """Every section stitched here, in a loop (what the engine's tasks must reproduce)."""
    info = rawdir.read_raw_info(raw)
    tiles = [rawdir.read_section_tiles(info, z)[0] for z in range(SECTIONS)]
    flat = stitch.flat_field(tiles)
    images, masks, rows, qualities = [], [], [], []
    for z, t in enumerate(tiles):
        s = stitch.stitch_section(t, info.layout, flat, z)
        images.append(s.image)
        masks.append(np.where(s.covered, 0, Defect.MISSING).astype(np.uint8))
        qualities.append(defects_.section_quality(s.image, s.covered))
        used = s.present & (s.matched if s.matched.any() else s.present)
        for (r, c), u in np.ndenumerate(used):
            rows.append((z, r, c, *s.origins[r, c], s.rotations[r, c], u))
    table = pd.DataFrame(rows, columns=["section", "row", "col", "origin_y", "origin_x",
                                        "rotation_rad", "used"])
    return np.stack(images), np.stack(masks), table, qualities


def test_two_workers_stitch_as_one_process_does_and_a_rerun_resumes(raw_dir, tmp_path,
                                                                    cluster):
    em = tmp_path / "em"
    qualities = _stitch_pass(raw_dir, em, cluster)  # the session's two worker processes
    images, masks, table, want_q = _one_process(raw_dir)
    stitched = io.open_zarr(em / "stitched.zarr")
    np.testing.assert_array_equal(np.asarray(stitched.read().result()), images)
    np.testing.assert_array_equal(
        np.asarray(io.open_zarr(em / "stitched_defects.zarr").read().result()), masks)
    got = io.read_table(em / "tiles.parquet", "tiles")
    pd.testing.assert_frame_equal(got.reset_index(drop=True), table, check_dtype=False)
    assert qualities == want_q
    # a finished section is not redone; a section without its record is
    stitched[2].write(np.zeros(images.shape[1:], np.float32)).result()
    stitched[4].write(np.zeros(images.shape[1:], np.float32)).result()
    Manifest(em).record_path(sections_engine.STITCH, 4).unlink()
    _stitch_pass(raw_dir, em, ClusterSpec(workers=1, processes=False))
    again = np.asarray(io.open_zarr(em / "stitched.zarr").read().result())
    assert not again[2].any()
    np.testing.assert_array_equal(again[4], images[4])


class Stopped(Exception):
    """Stands for a kill between stitching and fold/crack detection."""


def _arrays(em: Path) -> dict[str, np.ndarray]:
    return {name: np.asarray(io.open_zarr(em / name).read().result())
            for name in ("image.zarr", "defects.zarr", "maps.zarr", "stitched.zarr")}


def test_a_run_stopped_after_stitching_resumes_with_its_recorded_flat_field(
        raw_dir, tmp_path, cluster, monkeypatch):
    """`prepare` stopped after stitching, then run again, reads the flat field it recorded
    (not computed again, the record untouched), redoes no stitched section and gives what
    an unbroken run gives."""
    calls: list[int] = []
    real = stitch.flat_field

    def counted(tile_sets: list[np.ndarray], *args: float) -> np.ndarray:
        calls.append(len(tile_sets))
        return real(tile_sets, *args)

    monkeypatch.setattr(stitch, "flat_field", counted)
    config = prepare.PrepareConfig(align=elastic.AlignConfig(stride=16, patch=64))
    prepare.prepare(raw_dir, tmp_path / "whole", config, spec=cluster)
    assert calls == [SECTIONS]
    em = tmp_path / "em"

    def stop(*_: object) -> None:
        raise Stopped

    with monkeypatch.context() as m:
        m.setattr(sections_engine, "find_lines", stop)
        with pytest.raises(Stopped):
            prepare.prepare(raw_dir, em, config, spec=cluster)
    assert calls == [SECTIONS] * 2 and not (em / "image.zarr").exists()
    record = Manifest(em).root / prepare.FLAT_FIELD_RECORD
    flat = np.load(record)
    stamps = {p: p.stat().st_mtime_ns
              for p in [record, *Manifest(em).folder(sections_engine.STITCH).glob("*.npz")]}
    assert len(stamps) == SECTIONS + 1
    prepare.prepare(raw_dir, em, config, spec=cluster)
    assert calls == [SECTIONS] * 2  # the resumed run read the record
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    np.testing.assert_array_equal(np.load(record), flat)
    want = _arrays(tmp_path / "whole")
    for name, got in _arrays(em).items():
        np.testing.assert_array_equal(got, want[name], err_msg=name)
    assert (em / "prepare.json").read_text() == (tmp_path / "whole" / "prepare.json").read_text()
    pd.testing.assert_frame_equal(io.read_table(em / "tiles.parquet", "tiles"),
                                  io.read_table(tmp_path / "whole" / "tiles.parquet", "tiles"))


def test_a_damaged_flat_field_record_is_refused_naming_it(raw_dir, tmp_path):
    em = tmp_path / "em"
    info = rawdir.read_raw_info(raw_dir)
    Manifest(em).open(sections_engine.identity(info, prepare.PrepareConfig()))
    (Manifest(em).root / prepare.FLAT_FIELD_RECORD).write_bytes(b"\x93NUMPY half a file")
    with pytest.raises(ReconstructError, match=r"flat field record .*flat_field\.npy.*delete"):
        prepare.prepare(raw_dir, em, prepare.PrepareConfig())
    assert not (em / "stitched.zarr").exists()


def test_an_em_dir_prepared_with_other_settings_is_refused(raw_dir, tmp_path):
    em = tmp_path / "em"
    info = rawdir.read_raw_info(raw_dir)
    Manifest(em).open(sections_engine.identity(info, prepare.PrepareConfig()))
    with pytest.raises(ReconstructError, match=r"config\.contrast"):
        prepare.prepare(raw_dir, em, prepare.PrepareConfig(contrast="clahe"))
    assert not (em / "stitched.zarr").exists()


def _align(em: Path, usable: np.ndarray, ok: np.ndarray, config: elastic.AlignConfig,
           flows: elastic.FlowLookup | None) -> elastic.Maps:
    sections_engine.forget()
    shape = sections_engine.read_stitched(em, 0)[0].shape
    return elastic.align_stack(lambda z: sections_engine.read_stitched(em, z)[0],
                               lambda z: sections_engine.read_stitched(em, z)[1], SECTIONS,
                               usable, ok, shape, config, flows=flows)


def _measure(em: Path, job: flows_engine.FlowJob, usable: np.ndarray,
             spec: ClusterSpec) -> flows_engine.FlowRecords:
    with connect(spec) as client:
        client.run(sections_engine.forget)
        return flows_engine.measure_flows(Engine(client, Manifest(em)), job, usable)


def test_two_workers_measure_the_flows_the_one_process_alignment_does(raw_dir, tmp_path,
                                                                      cluster):
    """The alignment's flows as tasks on two worker processes give the maps of measuring
    every flow in the driver; a rerun measures only pairs without a record; a look-up that
    lacks pairs gives the same maps (the driver measures them)."""
    em = tmp_path / "em"
    flags = defects_.classify_sections(_stitch_pass(raw_dir, em, cluster, lines=True))
    usable = ~has(flags, Defect.MISSING)
    ok = usable & ~has(flags, SECTION_DEFECTS)
    config = elastic.AlignConfig()
    want = _align(em, usable, ok, config, None)
    job = flows_engine.FlowJob(str(em), SECTIONS, tuple(bool(v) for v in ok), config)
    flows = _measure(em, job, usable, cluster)
    asked: list[tuple[int, int]] = []

    def recorded(z: int, r: int) -> flow.Flow | None:
        asked.append((z, r))
        f = flows(z, r)
        assert f is not None, (z, r)
        return f

    got = _align(em, usable, ok, config, recorded)
    assert asked
    for name in ("nodes", "reference", "flow_coverage", "steps"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    # a rerun skips recorded pairs and measures a pair whose record is gone
    paths = [Manifest(em).record_path(flows_engine.FLOWS, job.item(z, r))
             for z, r in elastic.candidate_pairs(usable, ok, config)]
    before = [p.stat().st_mtime_ns for p in paths]
    paths[-1].unlink()
    _measure(em, job, usable, ClusterSpec(workers=1, processes=False))
    assert [p.stat().st_mtime_ns for p in paths[:-1]] == before[:-1]
    assert paths[-1].exists()
    # pairs missing from the look-up are measured by the driver, to the same maps
    partial = _align(em, usable, ok, config,
                     lambda z, r: None if (z + r) % 2 else flows(z, r))
    np.testing.assert_array_equal(partial.nodes, want.nodes)
