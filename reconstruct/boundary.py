"""A voxel classifier on filter features: clefts, and affinities from its classes (no I/O).

Sections are prepared first (`sections`: each normalised by its own mean and spread, blank ones
filled from their neighbours, ones shifted against both neighbours shifted back). Features are
anisotropic multi-scale Gaussian filters (the ilastik recipe; on CuPy when a GPU is present,
`xp`); one `HistGradientBoostingClassifier` sorts voxels into outside, membrane, interior, cleft
and z-face classes (voxel classes, not voxel pairs: a pair along one cell's membrane would teach
it to connect touching cells). Runs with `--clefts classifier` take its cleft probability;
affinities come from the network (`affinity_net`), which leaks far less between touching cells.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from connectome_query.reconstruct import sections, xp
from connectome_query.reconstruct.lattice import neighbour_slices

MODEL_FORMAT = "connectome-query/voxel-hgb/1"
CLS_BACKGROUND, CLS_MEMBRANE, CLS_INTERIOR, CLS_CLEFT, CLS_ZFACE = 0, 1, 2, 3, 4
N_CLASSES = 5
CUT = 1.0  # how far a membrane-membrane pair lowers an affinity
SIGMAS_XY = (0.7, 1.5, 3.0)
# in-plane tile of the filter bank in `probabilities`, and the margin each tile is read
# with: scipy's Gaussians reach 4 sigma (12 pixels at sigma 3), the minimum filter 1 more
TILE_YX = 512
FEATURE_MARGIN = 16


@dataclass
class AffinityModel:
    """A voxel classifier (background, membrane, interior, cleft) with metadata."""

    classifier: Any
    meta: dict[str, Any] = field(default_factory=dict)
    format: str = MODEL_FORMAT


def features(a: np.ndarray, voxel_size_zyx: tuple[float, float, float]) -> np.ndarray:
    """Filter bank on a normalised volume, shape (F, z, y, x) float32 (numpy or cupy)."""
    m = xp.get()
    nd = xp.ndimage()
    v = m.asarray(a, dtype=m.float32)
    ratio = voxel_size_zyx[1] / voxel_size_zyx[0]
    out = [v]
    for s in SIGMAS_XY:
        sig = (s * ratio, s, s)
        out.append(nd.gaussian_filter(v, sig))
        if s <= 1.5:
            out.append(nd.gaussian_gradient_magnitude(v, sig))
            out.append(nd.gaussian_laplace(v, sig))
    g = out[2]
    out.append(nd.minimum_filter(g, size=(1, 3, 3)))
    return m.stack(out).astype(m.float32)


def true_affinities(labels: np.ndarray) -> np.ndarray:
    """Ground-truth affinities (waterz layout): 1 where v and v-1 share a non-zero label."""
    out = np.zeros((3, *labels.shape), np.float32)
    out[0, 1:] = (labels[1:] == labels[:-1]) & (labels[1:] != 0)
    out[1, :, 1:] = (labels[:, 1:] == labels[:, :-1]) & (labels[:, 1:] != 0)
    out[2, :, :, 1:] = (labels[:, :, 1:] == labels[:, :, :-1]) & (labels[:, :, 1:] != 0)
    return out


def _boundary_voxels(lab: np.ndarray, axes: tuple[int, ...] = (0, 1, 2)) -> np.ndarray:
    """Voxels of a cell with a neighbour of another label along `axes` (its membrane)."""
    b = np.zeros(lab.shape, bool)
    for c in axes:
        lo, hi = neighbour_slices(c)
        d = lab[hi] != lab[lo]
        b[hi] |= d
        b[lo] |= d
    return b & (lab != 0)


def voxel_classes(lab: np.ndarray, cleft: np.ndarray) -> np.ndarray:
    """Training classes: 0 outside cells, 1 in-plane membrane, 2 interior, 3 synaptic
    cleft, 4 z-face (membrane seen obliquely: the next section belongs elsewhere)."""
    cls = np.where(lab != 0, CLS_INTERIOR, CLS_BACKGROUND).astype(np.int8)
    cls[_boundary_voxels(lab, (0,))] = CLS_ZFACE
    cls[_boundary_voxels(lab, (1, 2))] = CLS_MEMBRANE
    cls[cleft.astype(bool) & (lab != 0)] = CLS_CLEFT
    return cls


def train(images: list[np.ndarray], labels: list[np.ndarray], clefts: list[np.ndarray],
          voxel_size_zyx: tuple[float, float, float], n_samples: int = 120000,
          seed: int = 0, trained_on: str = "") -> AffinityModel:
    """Train the voxel classifier on images with ground truth (class-balanced sample)."""
    rng = np.random.default_rng(seed)
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    per = max(n_samples // (N_CLASSES * len(images)), 500)
    for img, lab, cl in zip(images, labels, clefts, strict=True):
        if img.shape != lab.shape or img.shape != cl.shape:
            raise ValueError("image, labels and clefts must have one shape")
        f = xp.to_numpy(features(sections.prepare(img), voxel_size_zyx))
        ff = f.reshape(f.shape[0], -1)
        cls = voxel_classes(lab, cl).reshape(-1)
        for k in range(N_CLASSES):
            idx = np.flatnonzero(cls == k)
            if len(idx):
                pick = rng.choice(idx, size=min(len(idx), per), replace=False)
                xs.append(ff[:, pick].T)
                ys.append(cls[pick])
    model = HistGradientBoostingClassifier(max_iter=40, learning_rate=0.3, max_leaf_nodes=31,
                                           early_stopping=False, random_state=seed)
    model.fit(np.concatenate(xs), np.concatenate(ys))
    meta = {"voxel_size_zyx": list(voxel_size_zyx), "sigmas_xy": list(SIGMAS_XY),
            "n_samples": int(sum(len(y) for y in ys)), "trained_on": trained_on,
            "classes": ["background", "membrane", "interior", "cleft", "zface"]}
    return AffinityModel(classifier=model, meta=meta)


def probabilities(model: AffinityModel, img: np.ndarray,
                  voxel_size_zyx: tuple[float, float, float]) -> np.ndarray:
    """Class probabilities (5, z, y, x) float32: background, membrane, interior, cleft,
    z-face."""
    return probabilities_of_prepared(model, sections.prepare(img), voxel_size_zyx)


def probabilities_of_prepared(model: AffinityModel, a: np.ndarray,
                              voxel_size_zyx: tuple[float, float, float]) -> np.ndarray:
    """`probabilities` of an image already prepared (`sections.prepared`)."""
    if getattr(model, "format", None) != MODEL_FORMAT:
        raise ValueError(f"model format is {getattr(model, 'format', None)!r}, "
                         f"expected {MODEL_FORMAT!r}")
    img = a
    out = np.empty((N_CLASSES, *img.shape), np.float32)
    # the filter bank (F floats a voxel) goes tile by tile in-plane, each tile with a
    # margin wider than the widest filter reaches, so it equals the whole-section result
    ny, nx = img.shape[1:]
    t, h = TILE_YX, FEATURE_MARGIN
    for y0 in range(0, ny, t):
        for x0 in range(0, nx, t):
            y1, x1 = min(y0 + t, ny), min(x0 + t, nx)
            hy0, hx0 = max(y0 - h, 0), max(x0 - h, 0)
            f = xp.to_numpy(features(a[:, hy0:min(y1 + h, ny), hx0:min(x1 + h, nx)],
                                     voxel_size_zyx))
            f = f[:, :, y0 - hy0:y1 - hy0, x0 - hx0:x1 - hx0]
            ff = f.reshape(f.shape[0], -1)
            p = np.empty((N_CLASSES, ff.shape[1]), np.float32)
            chunk = 1 << 19
            for i in range(0, ff.shape[1], chunk):
                p[:, i:i + chunk] = model.classifier.predict_proba(ff[:, i:i + chunk].T).T
            out[:, :, y0:y1, x0:x1] = p.reshape(N_CLASSES, img.shape[0], y1 - y0, x1 - x0)
    return out


def affinities_from_probabilities(p: np.ndarray) -> np.ndarray:
    """Waterz-layout affinities from class probabilities.

    aff(v, u) = min(f_v, f_u) * (1 - CUT * min(m_v, m_u)), with f = 1 - P(background)
    and m = P(membrane) + P(cleft), plus P(z-face) for z edges. A membrane voxel stays
    linked to its own interior; a membrane-membrane pair (a contact between cells) and
    anything touching the outside are cut.
    """
    m = xp.get()
    p = m.asarray(p)
    f = 1.0 - p[CLS_BACKGROUND]
    mem_xy = p[CLS_MEMBRANE] + p[CLS_CLEFT]
    mem_z = mem_xy + p[CLS_ZFACE]
    affs = m.zeros((3, *p.shape[1:]), dtype=m.float32)
    for c in range(3):
        mem = mem_z if c == 0 else mem_xy
        lw, h = neighbour_slices(c)
        affs[(c, *h)] = m.minimum(f[h], f[lw]) * (1.0 - CUT * m.minimum(mem[h], mem[lw]))
    return xp.to_numpy(affs)
