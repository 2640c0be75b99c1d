"""The front end's per-section passes as engine tasks: one Dask task per section, resumable.

Stitching (pass 2) and fold/crack detection (pass 3) need nothing of other sections, so each
section is a task (`engine.runner.Engine.run`): it reads its tiles (or its stitched section),
writes its own section of EM_DIR/stitched.zarr and stitched_defects.zarr (chunks one section deep,
so no two tasks share a file) and returns a small record (quality, tile placements, warnings) that
the driver assembles. EM_DIR/engine/manifest.json holds the raw directory's identity and every
setting that changes a result; an EM_DIR of another raw directory or other settings is refused,
and a rerun skips the sections already recorded.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from connectome_query.reconstruct import io
from connectome_query.reconstruct.align import defects as defects_
from connectome_query.reconstruct.align import stitch
from connectome_query.reconstruct.align.masks import LINE_DEFECTS, Defect, has
from connectome_query.reconstruct.align.rawdir import RawInfo, read_section_tiles
from connectome_query.reconstruct.engine.manifest import file_sha256
from connectome_query.reconstruct.engine.runner import Engine, Record
from connectome_query.reconstruct.errors import ReconstructError

STITCH = "stitching sections"
LINES = "folds and cracks"
FORMAT = "connectome-query/prepare/1"


@dataclass(frozen=True)
class SectionJob:
    """What a section task knows: the raw directory and where EM_DIR's arrays are."""

    info: RawInfo
    em_dir: str
    flat_path: str  # the flat field (.npy), saved once by the driver

    def path(self, name: str) -> Path:
        return Path(self.em_dir) / name


@dataclass(frozen=True)
class TileFit:
    """How the stitch placed and corrected one section's tiles (`stitch.blend`'s inputs, so the
    aligned image can be resampled from the tiles themselves)."""

    origins: np.ndarray
    rotations: np.ndarray
    gain: np.ndarray
    offset: np.ndarray
    use: np.ndarray


def identity(info: RawInfo, config: Any) -> dict[str, Any]:
    """What makes two preparations of an EM_DIR the same: the raw directory and the settings."""
    return {"prepare": FORMAT, "raw_dir": str(Path(info.path).resolve()),
            "raw_json_sha256": file_sha256(Path(info.path) / "raw.json"),
            "config": dataclasses.asdict(config)}  # made JSON by `Manifest.open`


def create_arrays(em: Path, shape: tuple[int, int, int], attrs: dict[str, Any]) -> None:
    """stitched.zarr and stitched_defects.zarr, chunked one section deep (each task writes whole
    chunks of its own); kept as they are when a resumed run finds them."""
    _, ny, nx = shape
    chunks = (1, min(ny, io.CHUNK[1]), min(nx, io.CHUNK[2]))
    io.create_zarr(em / "stitched.zarr", shape, "float32", chunks=chunks, attributes=attrs,
                   delete_existing=False)
    io.create_zarr(em / "stitched_defects.zarr", shape, "uint8", chunks=chunks,
                   attributes=attrs, delete_existing=False)


@functools.lru_cache(maxsize=8)
def _open(path: str) -> Any:
    return io.open_zarr(Path(path))


def forget() -> None:
    """Drop the opened arrays and flat field (a new run may have made new ones at the same
    paths)."""
    _open.cache_clear()
    _flat.cache_clear()


@functools.lru_cache(maxsize=2)
def _flat(path: str) -> np.ndarray:
    return np.load(path)


def stitch_task(z: int, job: SectionJob) -> Record:
    """Stitch section z; its image and uncovered pixels written, its numbers returned."""
    tiles, problems = read_section_tiles(job.info, z)
    try:
        s = stitch.stitch_section(tiles, job.info.layout, _flat(job.flat_path), z)
    except ValueError as e:
        raise ReconstructError(str(e)) from e
    mask = np.where(s.covered, 0, np.uint8(Defect.MISSING)).astype(np.uint8)
    _open(str(job.path("stitched.zarr")))[z].write(s.image).result()
    _open(str(job.path("stitched_defects.zarr")))[z].write(mask).result()
    q = defects_.section_quality(s.image, s.covered)
    used = s.present & (s.matched if s.matched.any() else s.present)
    return {"quality": np.array([q.contrast, q.sharpness, q.mean]),
            "origins": s.origins, "rotations": s.rotations, "used": used,
            "gain": s.gain, "offset": s.offset,
            "warnings": np.array(problems + s.warnings, dtype=str)}


def lines_task(z: int, job: SectionJob) -> Record:
    """Folds and cracks of section z, added to its stitched defects (from the uncovered
    pixels alone, so a task redone after a kill gives the same flags)."""
    image = io.read_block(_open(str(job.path("stitched.zarr"))), slice(z, z + 1),
                          job.path("stitched.zarr"), "stitched")[0]
    st = _open(str(job.path("stitched_defects.zarr")))
    m = np.asarray(st[z].read().result()) & np.uint8(Defect.MISSING)
    st[z].write(m | defects_.line_defects(image, m == 0)).result()
    return {}


def stitched_image(em: Path, z: int) -> np.ndarray:
    """Stitched section z."""
    return io.read_block(_open(str(em / "stitched.zarr")), slice(z, z + 1),
                         em / "stitched.zarr", "stitched")[0]


def stitched_mask(em: Path, z: int) -> np.ndarray:
    """The pixels of stitched section z no flow may come from (folds, cracks, uncovered)."""
    m = io.read_block(_open(str(em / "stitched_defects.zarr")), slice(z, z + 1),
                      em / "stitched_defects.zarr", "stitched defects")[0]
    return has(m, LINE_DEFECTS | Defect.MISSING)


def read_stitched(em: Path, z: int) -> tuple[np.ndarray, np.ndarray]:
    """Stitched section z and its mask (`stitched_image`, `stitched_mask`), as the elastic
    alignment reads them (in the driver and in its flow tasks alike)."""
    return stitched_image(em, z), stitched_mask(em, z)


def placements(z: int, r: Record) -> pd.DataFrame:
    """One row per tile of section z: where the stitch placed it and whether it was used (the
    stitched frame, which the truth's look-up needs: `align.truth_frame`)."""
    rows, cols = r["rotations"].shape
    gy, gx = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    return pd.DataFrame({"section": np.full(rows * cols, z), "row": gy.ravel(),
                         "col": gx.ravel(), "origin_y": r["origins"][..., 0].ravel(),
                         "origin_x": r["origins"][..., 1].ravel(),
                         "rotation_rad": r["rotations"].ravel(), "used": r["used"].ravel()})


def stitch_sections(engine: Engine, job: SectionJob, nz: int
                    ) -> tuple[list[defects_.Quality], list[str], list[TileFit]]:
    """Pass 2 on the engine: every section stitched; EM_DIR/tiles.parquet from the records.
    Returns the sections' qualities, the warnings and the tile fits, in section order."""
    records = engine.run(STITCH, range(nz), stitch_task, job)
    qualities, warnings, tables, fits = [], [], [], []
    for z, r in records:
        fits.append(TileFit(r["origins"], r["rotations"], r["gain"], r["offset"], r["used"]))
        qualities.append(defects_.Quality(*(float(v) for v in r["quality"])))
        warnings += [str(w) for w in r["warnings"]]
        tables.append(placements(z, r))
    io.write_table(job.path("tiles.parquet"), pd.concat(tables, ignore_index=True))
    return qualities, warnings, fits


def find_lines(engine: Engine, job: SectionJob, sections: list[int]) -> None:
    """Pass 3 on the engine: folds and cracks of the given sections."""
    engine.run(LINES, sections, lines_task, job)
