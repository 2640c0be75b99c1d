"""The tissue's drift taken out of the maps' translations.

Neurites cross sections obliquely, so the tissue's mean position moves from section to section
and maps composed along z follow it: a section's translation is its own rigid shift plus that
drift. In the images the two cannot be told apart, but they differ along z: shifts are
independent from section to section (each section is cut and imaged on its own), the drift
changes slowly (neurites keep their course). `remove_drift` takes from each section's
translation its best estimate of the drift (the Gaussian posterior mean): the shifts' spread is
measured from the translations' second differences, the drift's statistics are settings
(`DriftConfig`: steps of `step` px per section, consecutive steps correlated by
`correlation`). The less the stack can say (few sections, large shifts), the less is removed;
over a short stack it is next to nothing, over hundreds of sections most of the drift. Each
node's motion about its section's translation (the section's own warp and rotation, smaller
than its shift, against local tissue motion) gets the same treatment with its own settings.
The settings' defaults are the drift of the `raw` preset's tissue as the aligner follows it on
undeformed volumes (`bench/reconstruct/align_bound.py`; settings seeds 3, 11).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OFFSET_PRIOR = 1e6
"""px^2: prior variance of the stack's common offset (the reference's own shift): free."""


@dataclass(frozen=True)
class DriftConfig:
    """What is known of the tissue's drift along z."""

    step: float = 0.25  # px: sd of the tissue's mean motion between neighbouring sections (0: keep)
    correlation: float = 0.6  # of consecutive steps
    shape_step: float = 0.4  # px: the same for each node's motion about the mean (0: keep)
    shape_correlation: float = 0.5
    min_sections: int = 8  # fewer usable sections: maps are kept


def shift_spread(series: np.ndarray) -> float:
    """sd (px) of the sections' independent values in series (n, k) along z, robustly from
    their second differences (white values of sd s give second differences of sd
    s * sqrt(6); a slow drift adds next to nothing), pooled over the k series."""
    second = np.diff(series, n=2, axis=0).ravel()
    mad = float(np.median(np.abs(second - np.median(second))))
    return 1.4826 * mad / np.sqrt(6.0)


def summed_steps(step_covariance: np.ndarray) -> np.ndarray:
    """Covariance (d, d) of a running sum over d sections, 0 at the first, whose d - 1 steps
    have covariance `step_covariance` (d - 1, d - 1): L C L^T with L lower ones."""
    depth = len(step_covariance) + 1
    full = np.zeros((depth, depth))
    full[1:, 1:] = np.cumsum(np.cumsum(step_covariance, axis=0), axis=1)
    return full


def drift_covariance(zs: np.ndarray, step: float, correlation: float) -> np.ndarray:
    """Covariance (n, n) of the drift at sections `zs` (sorted): the sum of steps whose
    correlation at lag k is `correlation` ** k, started at the first section."""
    depth = int(zs[-1] - zs[0]) + 1
    lag = np.abs(np.subtract.outer(np.arange(depth - 1), np.arange(depth - 1)))
    at = zs - zs[0]
    return np.asarray(summed_steps(step**2 * correlation**lag)[np.ix_(at, at)])


def estimate_drift(series: np.ndarray, zs: np.ndarray, step: float, correlation: float
                   ) -> np.ndarray:
    """(n, k) posterior mean of the drift in k series (n, k) along sections `zs`, each a
    drift plus independent per-section values (their spread pooled over the series) plus a
    free offset."""
    n = len(zs)
    c_drift = drift_covariance(zs, step, correlation)
    spread = shift_spread(series)
    total = c_drift + spread**2 * np.eye(n) + OFFSET_PRIOR * np.ones((n, n))
    return np.asarray(c_drift @ np.linalg.solve(total, series))


def remove_drift(nodes: np.ndarray, usable: np.ndarray, config: DriftConfig) -> np.ndarray:
    """Maps (z, gy, gx, 2) with the drift estimated on the `usable` sections taken out of
    every section's translation and, with `shape_step`, of every node's motion about it
    (interpolated along z for the other sections)."""
    zs = np.flatnonzero(usable)
    if len(zs) < config.min_sections:
        return nodes
    found = np.zeros((len(zs), *nodes.shape[1:]))
    translations = nodes[zs].mean(axis=(1, 2))
    if config.step > 0:
        found += estimate_drift(translations, zs, config.step, config.correlation)[:, None, None]
    if config.shape_step > 0:
        shape = (nodes[zs] - translations[:, None, None]).reshape(len(zs), -1)
        found += estimate_drift(shape, zs, config.shape_step, config.shape_correlation
                                ).reshape(found.shape)
    if not found.any():
        return nodes
    z = np.arange(len(nodes))
    flat = found.reshape(len(zs), -1)
    per_z = np.stack([np.interp(z, zs, flat[:, k]) for k in range(flat.shape[1])], axis=1)
    return np.asarray(nodes - per_z.reshape(nodes.shape))
