"""The whole front end on disk: RAW_DIR (tiles) -> EM_DIR (aligned, repaired volume).

Passes, each section by section through TensorStore (only the fill holds a slab of sections);
stitching and fold/crack detection run as Dask tasks, one per section, and pass 4's flows one
per pair of sections, resumable (`align.sections_engine`, `align.flows_engine`):

1. flat field from a sample of sections' tiles -> EM_DIR/engine/flat_field.npy (a resumed run
   reads it);
2. stitch every section -> EM_DIR/stitched.zarr (float32), its quality, and its uncovered
   pixels -> EM_DIR/stitched_defects.zarr; every tile's fitted placement ->
   EM_DIR/tiles.parquet;
3. section-wide flags (no tissue, blur) from the stack's qualities; folds and cracks of the
   sections without one, added to EM_DIR/stitched_defects.zarr;
4. elastic alignment: every flow it may need measured as tasks, then the meshes relaxed in order
   (`elastic.align_stack`) -> EM_DIR/maps.zarr (z, gy, gx, 2) node positions;
5. the aligned image read from the tiles through the composed map (aligned pixel -> stitched
   position -> tile pixel) in one cubic resampling (`ALIGNED_ORDER`), the masks warped; fill
   missing and damaged voxels from aligned neighbours; normalise contrast from good pixels ->
   EM_DIR/image.zarr (uint8), EM_DIR/defects.zarr (uint8 `masks.Defect` flags), volume.json,
   prepare.json (what was found and done).

EM_DIR is then an EM directory as `connectome reconstruct` reads it (RUN_DIR.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from connectome_query.reconstruct import io
from connectome_query.reconstruct.align import defects as defects_
from connectome_query.reconstruct.align import (
    elastic,
    flows_engine,
    restore,
    sections_engine,
    stitch,
    warp,
)
from connectome_query.reconstruct.align.masks import LINE_DEFECTS, SECTION_DEFECTS, Defect, has
from connectome_query.reconstruct.align.rawdir import RawInfo, read_raw_info, read_section_tiles
from connectome_query.reconstruct.engine import cluster
from connectome_query.reconstruct.engine.manifest import Manifest, atomic_file
from connectome_query.reconstruct.engine.runner import Engine
from connectome_query.reconstruct.errors import ReconstructError
from connectome_query.reconstruct.progress import Progress, Quiet, Tick, stage_tick

FILL_HALO = 8
"""Sections read above and below a slab when filling (longer missing runs stay unfilled)."""
FLAT_FIELD_SECTIONS = 48
FLAT_FIELD_RECORD = "flat_field.npy"
"""The flat field in EM_DIR/engine/, read again by a resumed run."""
ALIGNED_ORDER = 3
"""Spline order of the one resampling from the tiles to the aligned section: warping the
stitched section (itself resampled from the tiles) bilinearly twice over smoothed away about
a third of the image's fine structure, which the affinity network reads membranes from."""


@dataclass(frozen=True)
class PrepareConfig:
    """Settings of the front end."""

    align: elastic.AlignConfig = field(default_factory=elastic.AlignConfig)
    contrast: str = "linear"  # restore.CONTRAST_MODES
    fill: bool = True
    slab: int = 32


@dataclass
class PrepareReport:
    """What the front end found and did (written as prepare.json)."""

    sections: int
    section_flags: list[list[str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    flow_coverage: list[float] = field(default_factory=list)
    aligned_to: list[int] = field(default_factory=list)
    filled_voxels: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"sections": self.sections, "section_flags": self.section_flags,
                "warnings": self.warnings, "flow_coverage": self.flow_coverage,
                "aligned_to": self.aligned_to, "filled_voxels": self.filled_voxels}


def _flat_field(info: RawInfo, path: Path) -> np.ndarray:
    """The flat field from a sample of sections' tiles, recorded at `path` (`atomic_file`:
    whole or not at all); a resumed run reads the record instead of computing it again
    (the manifest has checked that the raw directory and settings are the same)."""
    if path.exists():
        try:
            return np.asarray(np.load(path, allow_pickle=False))
        except (OSError, ValueError, EOFError) as e:
            raise ReconstructError(f"flat field record {path} is damaged ({e}); delete it to "
                                   "compute the flat field again") from e
    nz = info.sections
    sample = np.unique(np.linspace(0, nz - 1, min(nz, FLAT_FIELD_SECTIONS)).astype(int))
    flat = stitch.flat_field([read_section_tiles(info, int(z))[0] for z in sample])
    with atomic_file(path) as fh:
        np.save(fh, flat)
    return flat


def _flag_names(v: int) -> list[str]:
    return [str(f.name).lower() for f in Defect if v & int(f)]


def prepare(raw_dir: Path, em_dir: Path, config: PrepareConfig = PrepareConfig(),
            progress: Progress | None = None,
            spec: cluster.ClusterSpec | None = None) -> PrepareReport:
    """Run the front end; returns its report (also written to EM_DIR/prepare.json). The
    per-section passes run as Dask tasks on the cluster `spec` names (default: a LocalCluster
    sized to the machine) and resume where a killed run stopped; `progress` is shown each
    pass's sections done."""
    if config.contrast not in restore.CONTRAST_MODES:
        raise ReconstructError(f"contrast mode must be one of "
                               f"{', '.join(restore.CONTRAST_MODES)}, got {config.contrast!r}")
    progress = progress or Quiet()
    info = read_raw_info(raw_dir)
    em = Path(em_dir)
    nz = info.sections
    ny, nx = info.layout.section_shape
    report = PrepareReport(nz)
    vx, vy, vz = info.voxel_size_nm_xyz
    attrs = {"voxel_size_nm_xyz": [vx, vy, vz]}
    manifest = Manifest(em)
    resumed = manifest.open(sections_engine.identity(info, config))
    progress.note(f"{'resuming' if resumed else 'starting'} {em}: {nz} sections")

    tick = stage_tick(progress, "flat field", 1)
    flat_path = manifest.root / FLAT_FIELD_RECORD
    flat = _flat_field(info, flat_path)
    tick("flat field", 1.0)
    sections_engine.create_arrays(em, (nz, ny, nx), attrs)
    job = sections_engine.SectionJob(info, str(em.resolve()), str(flat_path.resolve()))
    with cluster.connect(spec or cluster.ClusterSpec(), progress.note) as client:
        engine = Engine(client, manifest, progress)
        client.run(sections_engine.forget)
        sections_engine.forget()
        qualities, warnings, fits = sections_engine.stitch_sections(engine, job, nz)
        report.warnings += warnings
        section_flags = defects_.classify_sections(qualities)
        sections_engine.find_lines(engine, job, [z for z in range(nz) if not section_flags[z]])
        usable = ~has(section_flags, Defect.MISSING)
        reference_ok = usable & ~has(section_flags, SECTION_DEFECTS)
        flow_job = flows_engine.FlowJob(str(em.resolve()), nz,
                                        tuple(bool(v) for v in reference_ok), config.align)
        flows = flows_engine.measure_flows(engine, flow_job, usable)
    for z in range(nz):
        if section_flags[z]:
            report.warnings.append(f"section {z}: {', '.join(_flag_names(section_flags[z]))}"
                                   f"; masked and filled from its neighbours")
    sections_engine.forget()  # the arrays as the tasks left them

    align_tick = stage_tick(progress, "elastic alignment")
    maps = elastic.align_stack(lambda z: sections_engine.stitched_image(em, z),
                               lambda z: sections_engine.stitched_mask(em, z), nz, usable,
                               reference_ok, (ny, nx), config.align, align_tick, flows)
    align_tick("aligned", 1.0)
    report.warnings += maps.notes
    report.flow_coverage = [round(float(c), 3) for c in maps.flow_coverage]
    report.aligned_to = [int(r) for r in maps.reference]
    io.write_zarr(em / "maps.zarr", maps.nodes.astype(np.float32),
                  attributes={**attrs, "stride": maps.stride,
                              "meaning": "node (i, j) of section z shows the stitched section "
                                         "at maps[z, i, j] (y, x px)"})

    def read_aligned(z: int, coords: np.ndarray) -> np.ndarray:
        tiles = stitch.corrected_tiles(read_section_tiles(info, z)[0], flat)
        f = fits[z]
        img, covered = stitch.blend(tiles, f.use, f.origins, f.rotations, f.gain, f.offset,
                                    info.layout, np.moveaxis(coords, 0, -1), ALIGNED_ORDER)
        keep = covered & ~warp.outside_section(coords, (ny, nx))
        return np.where(keep, img, 0.0).astype(np.float32)

    tick = stage_tick(progress, "warp, fill, normalise")
    _warp_fill_normalise(em, nz, (ny, nx), maps, section_flags, read_aligned, config, attrs,
                         report, tick)
    report.section_flags = [_flag_names(int(v)) for v in section_flags]
    io.write_json(em / "volume.json", {
        "voxel_size_nm": [vx, vy, vz], "shape_zyx": [nz, ny, nx], "source": "prepared",
        "prepared_from": str(Path(raw_dir).resolve()), "created_by": io.CREATED_BY,
        "defects": "defects.zarr"})
    io.write_json(em / "prepare.json", report.as_dict())
    tick("done", 1.0)
    return report


def _warp_fill_normalise(em: Path, nz: int, shape: tuple[int, int], maps: elastic.Maps,
                         section_flags: np.ndarray, read_aligned: Any, config: PrepareConfig,
                         attrs: dict[str, Any], report: PrepareReport, tick: Tick) -> None:
    ny, nx = shape
    st_masks = io.open_zarr(em / "stitched_defects.zarr", "stitched defects")
    aligned = io.create_zarr(em / "aligned.zarr", (nz, ny, nx), "float32", attributes=attrs)
    masks = io.create_zarr(em / "defects.zarr", (nz, ny, nx), "uint8", attributes=attrs)
    for z in range(nz):
        tick(f"warping section {z}", 0.5 * z / nz)
        coords = warp.source_coordinates(maps.nodes[z], maps.stride, shape)
        img = read_aligned(z, coords)
        m = warp.warp_mask(np.asarray(st_masks[z].read().result()), coords,
                           outside=int(Defect.NO_TISSUE))
        m |= np.uint8(section_flags[z])
        aligned[z].write(img).result()
        masks[z].write(m).result()
    image = io.create_zarr(em / "image.zarr", (nz, ny, nx), "uint8", attributes=attrs)
    bad_flags = LINE_DEFECTS | SECTION_DEFECTS
    sample = [np.asarray(aligned[z].read().result()) for z in range(0, nz, max(nz // 16, 1))]
    sample_bad = [has(np.asarray(masks[z].read().result()), bad_flags | Defect.NO_TISSUE)
                  for z in range(0, nz, max(nz // 16, 1))]
    lo, hi = restore.stack_percentiles(sample, sample_bad)
    for z0 in range(0, nz, config.slab):
        z1 = min(z0 + config.slab, nz)
        tick(f"filling sections {z0}-{z1}", 0.5 + 0.5 * z0 / nz)
        h0, h1 = max(z0 - FILL_HALO, 0), min(z1 + FILL_HALO, nz)
        vol = np.asarray(aligned[h0:h1].read().result())
        m = np.asarray(masks[h0:h1].read().result())
        bad = has(m, bad_flags)
        outside = has(m, Defect.NO_TISSUE)
        filled = np.zeros_like(bad)
        if config.fill:
            # voxels outside the imaged tissue (black) are no source for a fill either
            no_source = bad | outside
            vol = restore.fill_from_neighbours(vol, no_source)
            filled = restore.fillable(no_source) & bad & ~outside
            m = np.where(filled, m | np.uint8(Defect.FILLED), m)
            report.filled_voxels += int(filled[z0 - h0:z1 - h0].sum())
        out = np.empty((z1 - z0, ny, nx), np.uint8)
        for k in range(z0, z1):
            sec = (vol[k - h0] - lo) / max(hi - lo, 1e-6) * 0.9 + 0.05
            # bad voxels nothing could fill come out grey, as borders do
            keep_out = outside[k - h0] | (bad[k - h0] & ~filled[k - h0])
            out[k - z0] = restore.normalise_section(sec, keep_out, config.contrast,
                                                    ignore=filled[k - h0])
        image[z0:z1].write(out).result()
        masks[z0:z1].write(m[z0 - h0:z1 - h0]).result()
