"""Skeletons (kimimaro), compartments and cell classes (pure logic, no I/O).

- Soma: a segment whose largest inscribed radius (anisotropic EDT) reaches
  `soma_radius_nm`; its centre is the deepest voxel.
- Compartments on each skeleton: vertices within 1.15 soma radii of the centre are soma;
  the remaining vertices split into branches at the soma. The axon is the branch holding
  most presynaptic sites of that segment (ties: the thinnest); its first
  `ais_length_nm` of path from the soma surface is the AIS; other branches are dendrite.
  Segments without a soma: "axon" if they make synapses, else "unknown".
- Class: a segment making >= 2 synapses with at least half onto AISs is "chandelier"
  (that is what defines chandelier cells); else a segment with a soma is "pyramidal";
  else "unknown".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import edt
import kimimaro
import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree

from reconstruct.synth import (
    AIS_LENGTH_NM,
    COMP_AIS,
    COMP_AXON,
    COMP_DENDRITE,
    COMP_NAMES,
    COMP_NONE,
    COMP_SOMA,
)


@dataclass
class Skel:
    """One segment's skeleton: vertices (x, y, z nm), edges, radii, compartment codes."""

    vertices: np.ndarray
    edges: np.ndarray
    radius: np.ndarray
    compartment: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))


def skeletonize(seg: np.ndarray, voxel_size_zyx: tuple[float, float, float],
                min_voxels: int = 200) -> dict[int, Skel]:
    """kimimaro TEASAR skeletons of every segment (vertices in nm, x, y, z)."""
    vz, vy, vx = voxel_size_zyx
    # kimimaro indexes (x, y, z): the transposed view of a C-ordered (z, y, x) array
    skels = kimimaro.skeletonize(
        np.asfortranarray(seg.T),
        teasar_params={"scale": 1.5, "const": 120, "pdrf_scale": 100000, "pdrf_exponent": 4,
                       "soma_detection_threshold": 1e9, "soma_acceptance_threshold": 1e9},
        anisotropy=(vx, vy, vz), dust_threshold=min_voxels, progress=False,
        fix_branching=True, fix_borders=True, parallel=1)
    out: dict[int, Skel] = {}
    for sid, s in skels.items():
        out[int(sid)] = Skel(np.asarray(s.vertices, float), np.asarray(s.edges, np.int64),
                             np.asarray(s.radius, float))
    return out


def find_somata(seg: np.ndarray, voxel_size_zyx: tuple[float, float, float],
                soma_radius_nm: float = 135.0) -> dict[int, tuple[np.ndarray, float]]:
    """Segments with a soma: id -> (centre x, y, z nm, inscribed radius nm)."""
    dt = edt.edt(seg, anisotropy=voxel_size_zyx, black_border=False, parallel=2)
    flat = seg.reshape(-1)
    d = dt.reshape(-1)
    big = np.flatnonzero(d >= soma_radius_nm)
    out: dict[int, tuple[np.ndarray, float]] = {}
    if len(big) == 0:
        return out
    order = big[np.argsort(-d[big])]
    labs = flat[order]
    _, first = np.unique(labs, return_index=True)
    for i in first:
        idx = order[i]
        z, y, x = np.unravel_index(idx, seg.shape)
        centre = np.array([x * voxel_size_zyx[2], y * voxel_size_zyx[1], z * voxel_size_zyx[0]])
        out[int(flat[idx])] = (centre, float(d[idx]))
    return out


def label_compartments(sk: Skel, soma: tuple[np.ndarray, float] | None,
                       presyn_xyz: np.ndarray,
                       ais_length_nm: float = AIS_LENGTH_NM) -> np.ndarray:
    """Compartment code per skeleton vertex (see module docstring)."""
    n = len(sk.vertices)
    comp = np.full(n, COMP_NONE, np.uint8)
    if n == 0:
        return comp
    if soma is None:
        comp[:] = COMP_AXON if len(presyn_xyz) else COMP_NONE
        return comp
    centre, rs = soma
    dist_c = np.linalg.norm(sk.vertices - centre, axis=1)
    in_soma = dist_c <= 1.15 * rs
    comp[in_soma] = COMP_SOMA
    rest = np.nonzero(~in_soma)[0]
    if len(rest) == 0:
        return comp
    e = sk.edges
    w = np.linalg.norm(sk.vertices[e[:, 0]] - sk.vertices[e[:, 1]], axis=1)
    g = coo_matrix((w, (e[:, 0], e[:, 1])), shape=(n, n)).tocsr()
    g = g + g.T
    keep = ~in_soma[e[:, 0]] & ~in_soma[e[:, 1]]
    gb = coo_matrix((np.ones(keep.sum()), (e[keep, 0], e[keep, 1])), shape=(n, n))
    _, branch = connected_components(gb, directed=False)
    root = int(np.argmin(dist_c))
    path = dijkstra(g, indices=root)
    counts: dict[int, int] = {}
    if len(presyn_xyz):
        tree = cKDTree(sk.vertices[rest])
        _, near = tree.query(presyn_xyz)
        for k in np.atleast_1d(near):
            b = int(branch[rest[int(k)]])
            counts[b] = counts.get(b, 0) + 1
    branches = np.unique(branch[rest])
    if counts:
        axon = max(counts, key=lambda b: counts[b])
    else:
        axon = min(branches.tolist(), key=lambda b: float(np.median(sk.radius[branch == b])))
    comp[rest] = COMP_DENDRITE
    ax = rest[branch[rest] == axon]
    comp[ax] = COMP_AXON
    start = np.nanmin(np.where(np.isfinite(path[ax]), path[ax], np.nan)) if len(ax) else 0.0
    if np.isfinite(start):
        comp[ax[path[ax] - start <= ais_length_nm]] = COMP_AIS
    return comp


def annotate(seg: np.ndarray, syn: pd.DataFrame, voxel_size_zyx: tuple[float, float, float],
             skels: dict[int, Skel]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Segments table and synapses with `post_compartment`; fills each Skel.compartment."""
    somata = find_somata(seg, voxel_size_zyx)
    ids, sizes = np.unique(seg[seg != 0], return_counts=True)
    xyz = syn[["x", "y", "z"]].to_numpy(float) if len(syn) else np.zeros((0, 3))
    pre = syn["pre_segment_id"].to_numpy(np.int64) if len(syn) else np.zeros(0, np.int64)
    post = syn["post_segment_id"].to_numpy(np.int64) if len(syn) else np.zeros(0, np.int64)
    for sid, sk in skels.items():
        sk.compartment = label_compartments(sk, somata.get(sid), xyz[pre == sid])
    post_comp = []
    for i in range(len(syn)):
        target = skels.get(int(post[i]))
        if target is None or len(target.vertices) == 0:
            post_comp.append("unknown")
            continue
        k = int(np.argmin(np.linalg.norm(target.vertices - xyz[i], axis=1)))
        post_comp.append(COMP_NAMES[int(target.compartment[k])])
    syn = syn.copy()
    syn["post_compartment"] = pd.Series(post_comp, index=syn.index, dtype="string")
    rows = []
    for sid, size in zip(ids.tolist(), sizes.tolist(), strict=True):
        out = syn[syn["pre_segment_id"] == sid]
        n_ais = int((out["post_compartment"] == "ais").sum())
        soma = somata.get(int(sid))
        if len(out) >= 2 and n_ais * 2 >= len(out):
            cls = "chandelier"
        elif soma is not None:
            cls = "pyramidal"
        else:
            cls = "unknown"
        c = soma[0] if soma is not None else (None, None, None)
        rows.append((int(sid), int(size), c[0], c[1], c[2], cls))
    seg_df = pd.DataFrame(rows, columns=["segment_id", "size_voxels", "soma_x", "soma_y",
                                         "soma_z", "predicted_class"])
    return seg_df, syn
