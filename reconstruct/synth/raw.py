"""The `raw` preset: a rendered volume as a microscope delivers it, with the truth of every step.

Each section of an undeformed volume (from `render`) is moved rigidly (a shift of
`RawConfig.section_shift` px sd, a small rotation) and deformed by a smooth non-linear field
(`warp_amplitude` px rms, varying over `warp_scale` px), gets folds (a dark band; the
tissue on either side displaced away from it), cracks (a bright gap; tissue pulled apart),
blur, or is missing (single sections and runs), drifts slowly in contrast along z, and is
imaged as a grid of overlapping tiles, each with its own offset, small rotation, brightness,
contrast and vignetting, plus its own noise.

Conventions (pixels, (y, x)): a deformed section S shows at pixel p the tissue of the
undeformed section T at p + D(p) (`deformation`, which includes the steps at folds and
cracks). Tile k shows at its pixel u the deformed section at
`origin_k + centre + R(theta_k) (u - centre)` (`tile_to_section`). Everything random is drawn
from the seed up front (`plan_raw`), so sections render independently (`raw_section`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.ndimage as ndi

from connectome_query.reconstruct.align.masks import Defect

RESIN = 0.98
"""Intensity of empty resin (cracks): brighter than any tissue."""
FOLD_DARK = 0.04
NO_SECTION = 0.03
TISSUE_RANGE = (0.12, 0.80)
"""The rendered image's [0, 255] maps to this range, leaving room for resin and folds."""


@dataclass(frozen=True)
class RawConfig:
    """How a volume is degraded and tiled (sizes in pixels of the section)."""

    grid: tuple[int, int] = (2, 2)  # tile rows, columns
    overlap: int = 40  # nominal overlap of neighbouring tiles
    tile_jitter: float = 3.0  # sd of a tile's offset from its nominal place
    tile_rotation_deg: float = 0.3  # largest tile rotation
    section_shift: float = 8.0  # sd of each section's rigid shift (px, per axis)
    section_rotation_deg: float = 0.5  # largest rigid rotation of a section
    warp_amplitude: float = 3.0  # rms of the smooth non-linear deformation on top
    warp_scale: float = 200.0  # its correlation length
    folds: int = 1
    cracks: int = 1
    blurred: int = 1
    missing_runs: tuple[int, ...] = (1, 2)  # lengths of runs of missing sections
    contrast_drift: float = 0.12  # amplitude of the slow gain change along z
    vignetting: float = 0.18  # brightness lost in a tile's corners
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.grid) < 1:
            raise ValueError(f"grid must be at least 1x1 tiles, got {self.grid}")
        if self.overlap < 8:
            raise ValueError(f"overlap must be at least 8 px, got {self.overlap}")

    def tile_shape(self, section_shape: tuple[int, int]) -> tuple[int, int]:
        """Tile size that covers a section of `section_shape` with this grid and overlap."""
        return tuple(  # type: ignore[return-value]
            self._side(s, g) for s, g in zip(section_shape, self.grid, strict=True))

    def _side(self, s: int, g: int) -> int:
        return int(np.ceil((s + (g - 1) * self.overlap) / g))

    def check_section(self, section_shape: tuple[int, int]) -> None:
        """Refuse a section so small that its tiles are not more than twice the overlap (the
        raw directory's own rule, so `prepare` would refuse what was written)."""
        tile = self.tile_shape(section_shape)
        if min(tile) // 2 <= self.overlap:
            need = [next(n for n in range(1, 100 * self.overlap * g)
                         if self._side(n, g) // 2 > self.overlap) for g in self.grid]
            raise ValueError(
                f"a section of {section_shape[0]}x{section_shape[1]} px (y, x) in "
                f"{self.grid[0]}x{self.grid[1]} tiles overlapping by {self.overlap} px gives "
                f"tiles of {tile[0]}x{tile[1]} px, not more than twice the overlap: sections "
                f"need at least {need[0]}x{need[1]} px")

    def nominal_origins(self, section_shape: tuple[int, int]) -> np.ndarray:
        """(rows, cols, 2) nominal top-left corner of each tile in the section."""
        th, tw = self.tile_shape(section_shape)
        r = np.arange(self.grid[0])[:, None] * (th - self.overlap)
        c = np.arange(self.grid[1])[None, :] * (tw - self.overlap)
        return np.stack(np.broadcast_arrays(r, c), axis=-1).astype(np.float64)


@dataclass
class LineDefect:
    """A fold or crack: the curve n.(p - c) + bend sin(t.(p - c) / wavelength) = 0."""

    z: int
    kind: Defect
    centre: tuple[float, float]
    normal: tuple[float, float]
    width: float
    bend: float
    wavelength: float

    def signed_distance(self, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        ny, nx = self.normal
        dy, dx = yy - self.centre[0], xx - self.centre[1]
        along = -nx * dy + ny * dx
        return ny * dy + nx * dx + self.bend * np.sin(along / self.wavelength)


@dataclass
class RawPlan:
    """Everything random about a raw volume, drawn once from the seed."""

    config: RawConfig
    shape_zyx: tuple[int, int, int]
    tile_shape: tuple[int, int]
    origins: np.ndarray  # (Z, rows, cols, 2) true tile origins
    rotations: np.ndarray  # (Z, rows, cols) radians
    tile_gain: np.ndarray  # (Z, rows, cols)
    tile_offset: np.ndarray  # (Z, rows, cols)
    section_gain: np.ndarray  # (Z,)
    section_offset: np.ndarray  # (Z,)
    section_shift: np.ndarray  # (Z, 2) rigid shift of each section
    section_rotation: np.ndarray  # (Z,) radians
    missing: list[int] = field(default_factory=list)
    blurred: list[int] = field(default_factory=list)
    lines: list[LineDefect] = field(default_factory=list)


def _pick_sections(rng: np.random.Generator, nz: int, cfg: RawConfig
                   ) -> tuple[list[int], list[int], list[int], list[int]]:
    """Sections for missing runs, blur, folds and cracks: interior, apart from each other."""
    free = set(range(1, nz - 1))
    missing: list[int] = []
    for run in cfg.missing_runs:
        starts = [z for z in sorted(free) if all(
            w in free and w - 1 not in missing and w + 1 not in missing
            for w in range(z, z + run)) and z + run < nz - 1]
        if not starts:
            raise ValueError(f"too few sections ({nz}) for the missing runs {cfg.missing_runs}")
        z0 = int(rng.choice(starts))
        missing += range(z0, z0 + run)
        free -= set(range(z0 - 1, z0 + run + 1))
    picked: list[list[int]] = []
    for count in (cfg.blurred, cfg.folds, cfg.cracks):
        if count > len(free):
            raise ValueError(f"too few sections ({nz}) for the defects asked for")
        chosen = sorted(int(z) for z in rng.choice(sorted(free), count, replace=False))
        free -= set(chosen)
        picked.append(chosen)
    return missing, picked[0], picked[1], picked[2]


def plan_raw(shape_zyx: tuple[int, int, int], cfg: RawConfig) -> RawPlan:
    """Draw the tiles' transforms and intensities, the defects and the contrast drift."""
    nz, ny, nx = shape_zyx
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 24]))
    rows, cols = cfg.grid
    th, tw = cfg.tile_shape((ny, nx))
    nominal = cfg.nominal_origins((ny, nx))
    origins = nominal[None] + rng.normal(0.0, cfg.tile_jitter, (nz, rows, cols, 2))
    rotations = np.deg2rad(rng.uniform(-cfg.tile_rotation_deg, cfg.tile_rotation_deg,
                                       (nz, rows, cols)))
    tile_gain = rng.uniform(0.85, 1.15, (nz, rows, cols))
    tile_offset = rng.uniform(-0.05, 0.05, (nz, rows, cols))
    phase = rng.uniform(0, 2 * np.pi, 2)
    zz = np.arange(nz)
    section_gain = 1 + cfg.contrast_drift * np.sin(2 * np.pi * zz / max(nz, 24) + phase[0])
    section_offset = 0.4 * cfg.contrast_drift * np.sin(2 * np.pi * zz / max(nz, 30) + phase[1])
    section_shift = rng.normal(0.0, cfg.section_shift, (nz, 2))
    section_rotation = np.deg2rad(rng.uniform(-cfg.section_rotation_deg,
                                              cfg.section_rotation_deg, nz))
    missing, blurred, folds, cracks = _pick_sections(rng, nz, cfg)
    lines = []
    for kind, zs in ((Defect.FOLD, folds), (Defect.CRACK, cracks)):
        for z in zs:
            angle = rng.uniform(0, np.pi)
            lines.append(LineDefect(
                z=z, kind=kind,
                centre=(float(rng.uniform(0.3, 0.7) * ny), float(rng.uniform(0.3, 0.7) * nx)),
                normal=(float(np.cos(angle)), float(np.sin(angle))),
                width=float(rng.uniform(5.0, 9.0) if kind == Defect.FOLD
                            else rng.uniform(3.0, 6.0)),
                bend=float(rng.uniform(2.0, 8.0)), wavelength=float(rng.uniform(30.0, 60.0))))
    return RawPlan(cfg, (nz, ny, nx), (th, tw), origins, rotations, tile_gain, tile_offset,
                   section_gain, section_offset, section_shift, section_rotation,
                   sorted(missing), blurred, lines)


def smooth_field(seed: int, z: int, shape: tuple[int, int], amplitude: float,
                 scale: float) -> np.ndarray:
    """(2, y, x) smooth random displacement with rms length `amplitude`, correlation length
    about `scale` (drawn at a coarse grid and interpolated cubically)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 25, z]))
    step = max(scale / 3.0, 4.0)
    coarse = tuple(int(np.ceil(s / step)) + 4 for s in shape)
    noise = ndi.gaussian_filter(rng.standard_normal((2, *coarse)), (0, 1.5, 1.5), mode="wrap")
    noise /= max(float(noise.std()), 1e-9)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    coords = np.stack([yy / step + 2, xx / step + 2])
    out = np.stack([ndi.map_coordinates(noise[c], coords, order=3, mode="nearest")
                    for c in range(2)])
    return (out * amplitude / np.sqrt(2.0)).astype(np.float32)


def section_deformation(plan: RawPlan, z: int) -> tuple[np.ndarray, np.ndarray]:
    """(D (2, y, x) float32, defects (y, x) uint8) of section z in its deformed frame."""
    cfg = plan.config
    _, ny, nx = plan.shape_zyx
    d = smooth_field(cfg.seed, z, (ny, nx), cfg.warp_amplitude, cfg.warp_scale)
    mask = np.zeros((ny, nx), np.uint8)
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float64)
    # the rigid part: a shift and a rotation about the section's centre
    th = plan.section_rotation[z]
    cy, cx = yy - (ny - 1) / 2, xx - (nx - 1) / 2
    d[0] += (plan.section_shift[z, 0] + (np.cos(th) - 1) * cy - np.sin(th) * cx).astype(
        np.float32)
    d[1] += (plan.section_shift[z, 1] + np.sin(th) * cy + (np.cos(th) - 1) * cx).astype(
        np.float32)
    for line in (ln for ln in plan.lines if ln.z == z):
        s = line.signed_distance(yy, xx)
        half = line.width / 2
        # a fold hides tissue under the band (tissue moved away from it); a crack opens a gap
        sign = 1.0 if line.kind == Defect.FOLD else -1.0
        step = sign * np.clip(s / half, -1, 1) * half
        d[0] += (step * line.normal[0]).astype(np.float32)
        d[1] += (step * line.normal[1]).astype(np.float32)
        mask[np.abs(s) < half] |= np.uint8(line.kind)
    if z in plan.blurred:
        mask |= np.uint8(Defect.BLUR)
    if z in plan.missing:
        mask |= np.uint8(Defect.MISSING)
    return d, mask


def deform_section(plan: RawPlan, z: int, section: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The deformed section z (float32 in [0, 1]), its field D and its true defect mask."""
    d, mask = section_deformation(plan, z)
    ny, nx = section.shape
    lo, hi = TISSUE_RANGE
    t = lo + (hi - lo) * section.astype(np.float32) / 255.0
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    # tissue continues beyond the volume (mirrored), as a section goes on beyond the imaged area
    s = ndi.map_coordinates(t, [yy + d[0], xx + d[1]], order=1, mode="mirror")
    for line in (ln for ln in plan.lines if ln.z == z):
        band = (mask & np.uint8(line.kind)) != 0
        s[band] = FOLD_DARK if line.kind == Defect.FOLD else RESIN
    if z in plan.blurred:
        s = ndi.gaussian_filter(s, 2.5)
    s = s * plan.section_gain[z] + plan.section_offset[z]
    if z in plan.missing:
        s[:] = NO_SECTION
    return s.astype(np.float32), d, mask


def tile_to_section(plan: RawPlan, z: int, r: int, c: int, u: np.ndarray) -> np.ndarray:
    """Section coordinates (.., 2) of tile pixels `u` (.., 2) of tile (r, c) in section z."""
    centre = (np.array(plan.tile_shape, np.float64) - 1) / 2
    th = plan.rotations[z, r, c]
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    return plan.origins[z, r, c] + centre + (u - centre) @ rot.T


def vignette(tile_shape: tuple[int, int], strength: float) -> np.ndarray:
    """Brightness factor of a tile's pixels: 1 in the middle, 1 - strength in the corners."""
    yy, xx = np.mgrid[0:tile_shape[0], 0:tile_shape[1]].astype(np.float64)
    ry = (yy - (tile_shape[0] - 1) / 2) / (tile_shape[0] / 2)
    rx = (xx - (tile_shape[1] - 1) / 2) / (tile_shape[1] / 2)
    return 1.0 - strength * (ry**2 + rx**2) / 2


def image_tiles(plan: RawPlan, z: int, deformed: np.ndarray) -> np.ndarray:
    """(rows, cols, th, tw) uint8 tiles of a deformed section, as the microscope images them."""
    rows, cols = plan.config.grid
    th, tw = plan.tile_shape
    u = np.moveaxis(np.mgrid[0:th, 0:tw], 0, -1).astype(np.float64)
    vig = vignette(plan.tile_shape, plan.config.vignetting)
    rng = np.random.default_rng(np.random.SeedSequence([plan.config.seed, 26, z]))
    out = np.empty((rows, cols, th, tw), np.uint8)
    for r in range(rows):
        for c in range(cols):
            p = tile_to_section(plan, z, r, c, u)
            v = ndi.map_coordinates(deformed, [p[..., 0], p[..., 1]], order=1, mode="mirror")
            v = (v * plan.tile_gain[z, r, c] + plan.tile_offset[z, r, c]) * vig
            v += rng.normal(0.0, 0.015, v.shape)
            out[r, c] = np.clip(v * 255.0, 0, 255).astype(np.uint8)
    return out


def raw_section(plan: RawPlan, z: int, section: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tiles (rows, cols, th, tw) uint8, deformation D (2, y, x) and true defect mask of
    section z, from its undeformed image (uint8)."""
    deformed, d, mask = deform_section(plan, z, section)
    return image_tiles(plan, z, deformed), d, mask


def tile_rows(plan: RawPlan) -> dict[str, np.ndarray]:
    """The truth of every tile as table columns (one row per section and tile)."""
    nz = plan.shape_zyx[0]
    rows, cols = plan.config.grid
    z, r, c = np.meshgrid(np.arange(nz), np.arange(rows), np.arange(cols), indexing="ij")
    return {"section": z.ravel(), "row": r.ravel(), "col": c.ravel(),
            "origin_y": plan.origins[..., 0].ravel(), "origin_x": plan.origins[..., 1].ravel(),
            "rotation_rad": plan.rotations.ravel(), "gain": plan.tile_gain.ravel(),
            "offset": plan.tile_offset.ravel()}
