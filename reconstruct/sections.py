"""Image preparation, section by section (pure logic): normalisation, blank and shifted sections.

Every section is normalised by its own mean and spread, computed from exact integer sums of its
pixels, so that a blockwise run (sums added over blocks) gets the very same numbers as a
whole-volume one. A blank section (spread under `BLANK_SPREAD`) is replaced by the mean of the
nearest good sections below and above it; a section shifted against both neighbours by the same
offset (phase correlation of the normalised sections, or of their central `SHIFT_WINDOW` pixels
when larger) is moved back. Shifts are all estimated on the sections as they are, so sections can
be done in any order. `Sections` holds the result for a volume; `prepared` applies it to a box.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

BLANK_SPREAD = 2.0
"""Grey levels: a section whose pixels spread less than this is blank (a missing section)."""
MAX_SHIFT = 12
"""Pixels: larger offsets between sections are not taken for a shifted section."""
SHIFT_WINDOW = 1024
"""Pixels: shifts are measured on the central window of this size of larger sections."""


def sums(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per section (first axis): the sum of the pixels and of their squares (int64, exact)."""
    a = img.astype(np.int64).reshape(img.shape[0], -1)
    return a.sum(axis=1), (a * a).sum(axis=1)


@dataclass(frozen=True)
class Sections:
    """What preparation needs to know of every section of a volume."""

    mean: np.ndarray  # float64 (z,)
    spread: np.ndarray  # float64 (z,)
    blank: np.ndarray  # bool (z,)
    shift: np.ndarray  # int64 (z, 2): (dy, dx) the section is moved by

    @classmethod
    def from_sums(cls, s1: np.ndarray, s2: np.ndarray, pixels: int) -> Sections:
        """Statistics from exact sums of `pixels` pixels a section; no shifts yet."""
        mean = s1.astype(np.float64) / pixels
        spread = np.sqrt(np.maximum(s2.astype(np.float64) / pixels - mean * mean, 0.0))
        return cls(mean, spread, spread < BLANK_SPREAD, np.zeros((len(s1), 2), np.int64))

    def with_shifts(self, shift: np.ndarray) -> Sections:
        return Sections(self.mean, self.spread, self.blank, np.asarray(shift, np.int64))

    def normalise(self, raw: np.ndarray, z0: int) -> np.ndarray:
        """Sections z0.. of `raw` (z, y, x) as zero-mean, unit-spread float32."""
        z1 = z0 + raw.shape[0]
        m = self.mean[z0:z1].astype(np.float32)[:, None, None]
        s = np.maximum(self.spread[z0:z1], 1e-3).astype(np.float32)[:, None, None]
        return (raw.astype(np.float32) - m) / s

    def fill_sources(self, z: int) -> list[int]:
        """The nearest good sections below and above blank section z (none if all blank)."""
        good = np.flatnonzero(~self.blank)
        below, above = good[good < z], good[good > z]
        return ([int(below[-1])] if len(below) else []) + ([int(above[0])] if len(above) else [])

    def shift_candidates(self) -> np.ndarray:
        """Sections whose shift is measured: good, between two good sections."""
        z = np.arange(1, len(self.blank) - 1)
        return z[~self.blank[z] & ~self.blank[z - 1] & ~self.blank[z + 1]]


def window(shape_yx: tuple[int, int]) -> tuple[slice, slice]:
    """The central window of a section that shifts are measured on."""
    out = []
    for n in shape_yx:
        w = min(n, SHIFT_WINDOW)
        a = (n - w) // 2
        out.append(slice(a, a + w))
    return out[0], out[1]


def shift_of(below: np.ndarray, here: np.ndarray, above: np.ndarray) -> tuple[int, int]:
    """How far to move a normalised section (window) `here` back, given its neighbours':
    (0, 0) unless it is offset against both by the same amount (to a pixel), at least 2 and
    at most MAX_SHIFT pixels."""
    from skimage.registration import phase_cross_correlation

    s1 = phase_cross_correlation(below, here, normalization=None)[0]
    s2 = phase_cross_correlation(above, here, normalization=None)[0]
    if np.abs(s1).max() >= 2 and np.abs(s1 - s2).max() <= 1 and np.abs(s1).max() <= MAX_SHIFT:
        dy, dx = np.round((s1 + s2) / 2)
        return int(dy), int(dx)
    return 0, 0


def of_volume(img: np.ndarray) -> Sections:
    """`Sections` of a whole volume in memory (uint8, z, y, x)."""
    s1, s2 = sums(img)
    sec = Sections.from_sums(s1, s2, img.shape[1] * img.shape[2])
    win = window(img.shape[1:])
    shift = np.zeros((img.shape[0], 2), np.int64)
    for z in sec.shift_candidates():
        a = sec.normalise(img[z - 1:z + 2, win[0], win[1]], int(z) - 1)
        shift[z] = shift_of(a[0], a[1], a[2])
    return sec.with_shifts(shift)


Reader = Callable[[int, slice, slice], np.ndarray]
"""read(z, rows, cols): raw pixels (uint8, (rows, cols)) of section z."""


def prepared(read: Reader, sec: Sections, lo: tuple[int, int, int], hi: tuple[int, int, int],
             shape_yx: tuple[int, int]) -> np.ndarray:
    """The prepared image (float32) of the box lo..hi of a volume whose sections are `sec`
    and whose in-plane shape is `shape_yx`: normalised, blank sections filled from their
    nearest good neighbours, shifted sections moved back (pixels from outside the section
    take the nearest edge pixel)."""
    (z0, y0, x0), (z1, y1, x1) = lo, hi
    ny, nx = shape_yx
    out = np.empty((z1 - z0, y1 - y0, x1 - x0), np.float32)
    for z in range(z0, z1):
        if sec.blank[z]:
            src = sec.fill_sources(z)
            if not src:
                out[z - z0] = sec.normalise(read(z, slice(y0, y1), slice(x0, x1))[None], z)[0]
                continue
            parts = [sec.normalise(read(s, slice(y0, y1), slice(x0, x1))[None], s)[0]
                     for s in src]
            out[z - z0] = np.mean(parts, axis=0)
            continue
        dy, dx = (int(v) for v in sec.shift[z])
        rows = np.clip(np.arange(y0, y1) - dy, 0, ny - 1)
        cols = np.clip(np.arange(x0, x1) - dx, 0, nx - 1)
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        raw = read(z, slice(r0, r1), slice(c0, c1))
        out[z - z0] = sec.normalise(raw[np.ix_(rows - r0, cols - c0)][None], z)[0]
    return out


def prepare(img: np.ndarray) -> np.ndarray:
    """The prepared image of a whole volume in memory (see `prepared`)."""
    sec = of_volume(img)
    return prepared(lambda z, r, c: img[z, r, c], sec, (0, 0, 0), img.shape,
                    img.shape[1:])
