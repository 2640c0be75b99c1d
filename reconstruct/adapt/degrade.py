"""Degraded sections with their defect flags, for training and measuring the restorer.

The damage is the front end's (`synth.raw`), drawn in a clean volume's own frame so that the
clean section is the target: a blurred section (Gaussian, sigma 1.5-3 px, plus pixel noise;
flag BLUR), a fold (a dark band 5-9 px wide along a bent line; FOLD), a crack (a bright band
3-6 px wide; CRACK), a missing section (MISSING), or a tile's area of a section missing
(a rectangle; MISSING). Grey levels are those of a prepared volume (`connectome prepare
--no-fill` with linear contrast): folds and missing tissue darker than any tissue (0), cracks
(empty resin) brighter (255).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.ndimage as ndi

from connectome_query.reconstruct.align.masks import Defect
from connectome_query.reconstruct.synth.raw import LineDefect

KINDS = ("blur", "fold", "crack", "missing", "partial")
DARK = 0.0
BRIGHT = 255.0


def _line(rng: np.random.Generator, shape: tuple[int, int], kind: Defect) -> np.ndarray:
    ny, nx = shape
    angle = rng.uniform(0, np.pi)
    ln = LineDefect(z=0, kind=kind,
                    centre=(float(rng.uniform(0.3, 0.7) * ny), float(rng.uniform(0.3, 0.7) * nx)),
                    normal=(float(np.cos(angle)), float(np.sin(angle))),
                    width=float(rng.uniform(5.0, 9.0) if kind == Defect.FOLD
                                else rng.uniform(3.0, 6.0)),
                    bend=float(rng.uniform(2.0, 8.0)), wavelength=float(rng.uniform(30.0, 60.0)))
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float64)
    return np.abs(ln.signed_distance(yy, xx)) <= ln.width / 2


def degrade_section(section: np.ndarray, kind: str, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(degraded uint8 section, its uint8 defect flags) of a clean uint8 section."""
    s = section.astype(np.float64)
    flags = np.zeros(section.shape, np.uint8)
    if kind == "blur":
        s = ndi.gaussian_filter(s, rng.uniform(1.5, 3.0))
        s = s + rng.normal(0.0, rng.uniform(3.0, 10.0), s.shape)
        flags[:] = Defect.BLUR
    elif kind in ("fold", "crack"):
        flag = Defect.FOLD if kind == "fold" else Defect.CRACK
        band = _line(rng, section.shape, flag)
        s[band] = DARK if kind == "fold" else BRIGHT
        flags[band] = flag
    elif kind == "missing":
        s[:] = DARK
        flags[:] = Defect.MISSING
    elif kind == "partial":
        ny, nx = section.shape
        h, w = int(rng.uniform(0.25, 0.6) * ny), int(rng.uniform(0.25, 0.6) * nx)
        y0, x0 = int(rng.integers(0, ny - h + 1)), int(rng.integers(0, nx - w + 1))
        s[y0:y0 + h, x0:x0 + w] = DARK
        flags[y0:y0 + h, x0:x0 + w] = Defect.MISSING
    else:
        raise ValueError(f"degradation must be one of {', '.join(KINDS)}, got {kind!r}")
    return np.clip(np.rint(s), 0, 255).astype(np.uint8), flags


def degrade_volume(img: np.ndarray, plan: Sequence[tuple[int, str]], seed: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(degraded volume, defect flags) of a clean uint8 volume: section z gets degradation
    `kind` for each (z, kind) of `plan`."""
    out, flags = img.copy(), np.zeros(img.shape, np.uint8)
    for z, kind in plan:
        rng = np.random.default_rng([seed, int(z), KINDS.index(kind)])
        out[z], flags[z] = degrade_section(img[z], kind, rng)
    return out, flags


def bench_plan(nz: int) -> list[tuple[int, str]]:
    """Sections to damage in a held-out volume of `nz` sections: each kind once, a run of two
    missing sections, and about one damaged section in four, none at the ends."""
    kinds = ["blur", "fold", "crack", "partial", "missing", "blur", "fold", "crack"]
    zs = list(range(2, nz - 2, 4))
    plan = [(z, kinds[i % len(kinds)]) for i, z in enumerate(zs)]
    if nz >= 12:  # a run of two missing sections
        z = zs[len(zs) // 2] + 2
        plan += [(z, "missing"), (z + 1, "missing")]
    return sorted(plan)
