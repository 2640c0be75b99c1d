"""The raw directory: a microscope's tiles as files, and (synthetic data) the truth beside them.

    RAW_DIR/raw.json                      grid, tile shape, overlap, section shape, voxel size
    RAW_DIR/tiles/s00012/r01_c00.png      tile (row 1, col 0) of section 12, 8-bit greyscale
    RAW_DIR/truth/undeformed/             synthetic only: the EM directory before degradation
                                          (image, segmentation, synapses, skeletons)
    RAW_DIR/truth/deformation.zarr        (z, 2, y, x) float32: section pixel p shows tissue p + D
    RAW_DIR/truth/defects.zarr            (z, y, x) uint8 `masks.Defect` flags, section frame
    RAW_DIR/truth/tiles.parquet           every tile's true origin, rotation, gain, offset
    RAW_DIR/truth/raw_truth.json          the generator's settings and its defect list

Every read checks what it gets: a missing tile is reported and masked, a tile of the wrong
size or an unreadable one is an error naming the section, the tile and the file.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
import pandas as pd

from connectome_query.reconstruct import io, synth, synthetic_em
from connectome_query.reconstruct.align.stitch import Layout
from connectome_query.reconstruct.errors import ReconstructError
from connectome_query.reconstruct.progress import Tick, no_progress
from connectome_query.reconstruct.synth import raw

FORMAT = "connectome-raw-tiles/1"
TILE_PATTERN = "tiles/s{section:05d}/r{row:02d}_c{col:02d}.png"


@dataclasses.dataclass(frozen=True)
class RawInfo:
    """raw.json, checked."""

    path: Path
    sections: int
    layout: Layout
    voxel_size_nm_xyz: tuple[float, float, float]

    def tile_path(self, section: int, row: int, col: int) -> Path:
        return self.path / TILE_PATTERN.format(section=section, row=row, col=col)


def _ints(info: dict[str, Any], key: str, n: int, where: Path, low: int = 1) -> list[int]:
    v = info.get(key)
    if not (isinstance(v, list) and len(v) == n and all(
            isinstance(x, int) and not isinstance(x, bool) and x >= low for x in v)):
        raise ReconstructError(f"raw directory: {where} field {key!r} must be {n} integers "
                               f">= {low}, got {v!r}")
    return v


def read_raw_info(raw_dir: Path) -> RawInfo:
    """raw.json of a raw directory, validated."""
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise ReconstructError(f"raw directory {raw_dir} does not exist")
    where = raw_dir / "raw.json"
    info = io.read_json(where, "raw directory description")
    if info.get("format") != FORMAT:
        raise ReconstructError(f"raw directory: {where} field 'format' must be {FORMAT!r}, "
                               f"got {info.get('format')!r}")
    sections = info.get("sections")
    if not (isinstance(sections, int) and sections >= 1):
        raise ReconstructError(f"raw directory: {where} field 'sections' must be a positive "
                               f"integer, got {sections!r}")
    grid = _ints(info, "grid", 2, where)
    tile = _ints(info, "tile_shape", 2, where, 16)
    shape = _ints(info, "section_shape", 2, where, 16)
    overlap = info.get("overlap")
    if not (isinstance(overlap, int) and 0 < overlap < min(tile) // 2):
        raise ReconstructError(f"raw directory: {where} field 'overlap' must be an integer "
                               f"between 1 and half the tile size, got {overlap!r}")
    vs = info.get("voxel_size_nm")
    if not (isinstance(vs, list) and len(vs) == 3 and all(
            isinstance(x, int | float) and x > 0 for x in vs)):
        raise ReconstructError(f"raw directory: {where} field 'voxel_size_nm' must be three "
                               f"positive numbers, got {vs!r}")
    layout = Layout((grid[0], grid[1]), (tile[0], tile[1]), overlap, (shape[0], shape[1]))
    covered = (grid[0] * tile[0] - (grid[0] - 1) * overlap,
               grid[1] * tile[1] - (grid[1] - 1) * overlap)
    if covered[0] < shape[0] or covered[1] < shape[1]:
        raise ReconstructError(f"raw directory: {where}: a {grid[0]}x{grid[1]} grid of "
                               f"{tile[0]}x{tile[1]} tiles overlapping by {overlap} covers "
                               f"{covered}, less than 'section_shape' {shape}")
    return RawInfo(raw_dir, sections, layout, (float(vs[0]), float(vs[1]), float(vs[2])))


def read_section_tiles(info: RawInfo, z: int) -> tuple[np.ndarray, list[str]]:
    """Tiles (rows, cols, th, tw) uint8 of section z; a missing tile is all zeros and named
    in the returned problems."""
    rows, cols = info.layout.grid
    th, tw = info.layout.tile_shape
    out = np.zeros((rows, cols, th, tw), np.uint8)
    problems = []
    for r in range(rows):
        for c in range(cols):
            path = info.tile_path(z, r, c)
            if not path.exists():
                problems.append(f"section {z}, tile (row {r}, col {c}): {path.name} is "
                                f"missing; its area is masked")
                continue
            try:
                img = np.asarray(iio.imread(path))
            except Exception as e:
                raise ReconstructError(f"section {z}, tile (row {r}, col {c}): cannot read "
                                       f"{path}: {e}") from e
            if img.ndim == 3:
                raise ReconstructError(f"section {z}, tile (row {r}, col {c}): {path} has "
                                       f"{img.shape[2]} channels, expected 8-bit greyscale")
            if img.shape != (th, tw):
                raise ReconstructError(f"section {z}, tile (row {r}, col {c}): {path} is "
                                       f"{img.shape[0]}x{img.shape[1]} px, but raw.json "
                                       f"'tile_shape' says {th}x{tw}")
            if img.dtype != np.uint8:
                raise ReconstructError(f"section {z}, tile (row {r}, col {c}): {path} has "
                                       f"dtype {img.dtype}, expected 8-bit greyscale")
            out[r, c] = img
    return out, problems


def write_raw_info(out: Path, sections: int, layout: Layout,
                   voxel_size_nm_xyz: tuple[float, float, float]) -> None:
    io.write_json(out / "raw.json", {
        "format": FORMAT, "sections": sections, "grid": list(layout.grid),
        "tile_shape": list(layout.tile_shape), "overlap": layout.overlap,
        "section_shape": list(layout.section_shape),
        "voxel_size_nm": list(voxel_size_nm_xyz), "tile_pattern": TILE_PATTERN,
        "created_by": io.CREATED_BY})


def write_section_tiles(out: Path, z: int, tiles: np.ndarray) -> None:
    for r in range(tiles.shape[0]):
        for c in range(tiles.shape[1]):
            path = out / TILE_PATTERN.format(section=z, row=r, col=c)
            path.parent.mkdir(parents=True, exist_ok=True)
            iio.imwrite(path, tiles[r, c])


def write_synthetic_raw(out_dir: Path, cfg: synth.SynthConfig, raw_cfg: raw.RawConfig,
                        tick: Tick = no_progress) -> raw.RawPlan:
    """Render a synthetic volume, then degrade and tile it as a raw directory with truth."""
    out = Path(out_dir)
    und = out / "truth" / "undeformed"

    def part(lo: float, hi: float) -> Tick:
        return lambda msg, frac: tick(msg, lo + (hi - lo) * frac)

    nz, ny, nx = cfg.shape_zyx
    raw_cfg.check_section((ny, nx))  # before anything is written
    plan = raw.plan_raw((nz, ny, nx), raw_cfg)
    synthetic_em.write_synthetic_em(und, cfg, part(0.0, 0.5))
    image_path = und / "image.zarr"
    image = io.open_zarr(image_path, "undeformed image")
    deformation = io.create_zarr(out / "truth" / "deformation.zarr", (nz, 2, ny, nx),
                                 "float32", chunks=(1, 2, min(ny, 256), min(nx, 256)))
    defects = io.create_zarr(out / "truth" / "defects.zarr", (nz, ny, nx), "uint8")
    for z in range(nz):
        tick(f"raw section {z}", 0.5 + 0.5 * z / nz)
        section = io.read_block(image, slice(z, z + 1), image_path, "undeformed image")[0]
        tiles, d, mask = raw.raw_section(plan, z, section)
        write_section_tiles(out, z, tiles)
        deformation[z].write(d).result()
        defects[z].write(mask).result()
    vz, vy, vx = cfg.voxel_size_zyx
    write_raw_info(out, nz, Layout(raw_cfg.grid, plan.tile_shape, raw_cfg.overlap, (ny, nx)),
                   (vx, vy, vz))
    io.write_table(out / "truth" / "tiles.parquet", pd.DataFrame(raw.tile_rows(plan)))
    io.write_json(out / "truth" / "raw_truth.json", {
        "config": {k: list(v) if isinstance(v, tuple) else v
                   for k, v in dataclasses.asdict(raw_cfg).items()},
        "missing_sections": plan.missing, "blurred_sections": plan.blurred,
        "lines": [{"section": ln.z, "kind": str(ln.kind.name).lower(), "centre": list(ln.centre),
                   "normal": list(ln.normal), "width": ln.width, "bend": ln.bend,
                   "wavelength": ln.wavelength} for ln in plan.lines]})
    tick("done", 1.0)
    return plan
