"""Skeletons (kimimaro), compartments and cell classes (pure logic, no I/O).

- Soma: a segment whose largest inscribed radius (anisotropic EDT) reaches
  `soma_radius_nm`; its centre is the deepest voxel.
- Compartments on each skeleton: vertices within 1.15 soma radii of the centre are soma;
  the remaining vertices split into branches at the soma. Of the branches the skeleton
  joins to the soma, the axon is the one of thinnest proximal calibre (median radius
  over its first `ais_length_nm` of cable): an axon initial segment is thinner than the
  base of a dendrite. Its part within `ais_length_nm` straight distance of where it
  leaves the soma (and twice that of cable) is the AIS: the AIS runs straight, and a
  skeleton's path zig-zags between voxels. The other joined branches are dendrite.
  (Until 2026-12-02 the axon was the branch holding most presynaptic sites, else the
  thinnest by median radius; a bouton's nearest vertex often lies on a dendrite of its
  own cell, and dendrites taper, so that rule put the AIS on the true axon of 10 of 23
  cells of the benchmark's true segmentations, this one 19;
  `bench/reconstruct/compartments.py`.)
  Pieces the skeleton does not join to the soma, and segments without a soma (cut off
  by the volume's faces): each vertex takes the role of the synapse nearest to it along
  the cable, "axon" for one the segment makes, "dendrite" for one it receives (axons
  carry a neuron's outputs, dendrites its inputs), "unknown" on a piece with none.
- Class: a segment making >= 2 synapses with at least half onto AISs is "chandelier"
  (that is what defines chandelier cells); else a segment with a soma is "pyramidal";
  else "unknown".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cc3d
import edt
import fastremap
import kimimaro
import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree

from connectome_query.reconstruct.synth import (
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
    # fix_borders: where a segment meets the block's faces its skeleton ends at the centre
    # of the cut, so skeletons of neighbouring blocks meet in shared vertices
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


def merge_pieces(pieces: list[Skel]) -> Skel:
    """One skeleton from pieces of one segment: vertices at the same place (to 0.01 nm)
    become one vertex, so pieces that meet at a shared block face join there."""
    verts = np.concatenate([p.vertices for p in pieces])
    radius = np.concatenate([p.radius for p in pieces])
    base = np.cumsum([0] + [len(p.vertices) for p in pieces[:-1]])
    edges = np.concatenate([p.edges + b for p, b in zip(pieces, base, strict=True)])
    _, first, inverse = np.unique(np.round(verts, 2), axis=0, return_index=True,
                                  return_inverse=True)
    inverse = inverse.reshape(-1)
    e = np.sort(inverse[edges], axis=1)
    e = np.unique(e[e[:, 0] != e[:, 1]], axis=0)
    return Skel(verts[first], e.astype(np.int64), radius[first])


def join_at_plane(sk: Skel, regions: np.ndarray, z_nm: float,
                  voxel_size_zyx: tuple[float, float, float]) -> Skel:
    """`sk` with its pieces joined where they meet in one region of a section.

    `regions` labels the connected regions (cc3d, 8-connected) of the segmentation's
    section at depth `z_nm`. Vertices of `sk` lying in that section and in one region
    belong to one piece of tissue: where they fall into several unconnected parts of the
    skeleton, each further part is linked to the first by its closest pair of vertices.
    """
    n = len(sk.vertices)
    if n == 0:
        return sk
    on = np.flatnonzero(np.abs(sk.vertices[:, 2] - z_nm) < 1e-3)
    if len(on) < 2:
        return sk
    _, vy, vx = voxel_size_zyx
    iy = np.clip(np.round(sk.vertices[on, 1] / vy).astype(int), 0, regions.shape[0] - 1)
    ix = np.clip(np.round(sk.vertices[on, 0] / vx).astype(int), 0, regions.shape[1] - 1)
    region = regions[iy, ix]
    g = coo_matrix((np.ones(len(sk.edges)), (sk.edges[:, 0], sk.edges[:, 1])), shape=(n, n))
    _, part = connected_components(g, directed=False)
    extra = []
    for r in np.unique(region[region != 0]):
        idx = on[region == r]
        parts = np.unique(part[idx])
        first = idx[part[idx] == parts[0]]
        for q in parts[1:]:
            other = idx[part[idx] == q]
            d = np.linalg.norm(sk.vertices[first][:, None] - sk.vertices[other][None], axis=2)
            i, j = np.unravel_index(int(np.argmin(d)), d.shape)
            extra.append((int(first[i]), int(other[j])))
    if not extra:
        return sk
    edges = np.concatenate([sk.edges, np.array(extra, np.int64)])
    return Skel(sk.vertices, edges, sk.radius, sk.compartment)


def skeletonize_blockwise(read: Callable[[int, int], np.ndarray], n_sections: int,
                          voxel_size_zyx: tuple[float, float, float],
                          sizes: dict[int, int], slab: int,
                          min_voxels: int = 200) -> dict[int, Skel]:
    """`skeletonize` a volume `slab` sections at a time; `read(z0, z1)` gives sections
    [z0, z1) of the segmentation and `sizes` each segment's voxel count in the volume.

    Neighbouring slabs share one section. Skeleton pieces are merged per segment
    (`merge_pieces`: kimimaro ends a skeleton that meets a face inside its cut,
    `fix_borders`), then joined where they meet in one region of a shared section
    (`join_at_plane`), so a segment connected across a face gets one connected skeleton.
    Segments under `min_voxels` in the whole volume are left out, as in `skeletonize`;
    a segment's piece is skeletonized whatever its size in the slab. Skeletons differ
    from whole-volume ones near the faces (TEASAR's paths depend on the block).
    """
    if slab < 1:
        raise ValueError(f"slab must be at least 1, got {slab}")
    vz = voxel_size_zyx[0]
    keep = [sid for sid, n in sizes.items() if n >= min_voxels]
    pieces: dict[int, list[Skel]] = {}
    shared: list[tuple[float, np.ndarray]] = []  # (depth nm, regions) of shared sections
    for z0 in range(0, n_sections, slab):
        z1 = min(z0 + slab + 1, n_sections)
        block = fastremap.mask_except(read(z0, z1), keep, in_place=True)
        for sid, sk in skeletonize(block, voxel_size_zyx, min_voxels=1).items():
            sk.vertices[:, 2] += z0 * vz
            pieces.setdefault(sid, []).append(sk)
        if z1 == n_sections:
            break
        shared.append(((z1 - 1) * vz, cc3d.connected_components(block[-1], connectivity=8)))
    out = {}
    for sid, p in sorted(pieces.items()):
        sk = merge_pieces(p)
        for z_nm, regions in shared:
            sk = join_at_plane(sk, regions, z_nm, voxel_size_zyx)
        out[sid] = sk
    return out


SOMA_RADIUS_NM = 135.0


def find_somata(seg: np.ndarray, voxel_size_zyx: tuple[float, float, float],
                soma_radius_nm: float = SOMA_RADIUS_NM, z_offset: int = 0,
                core: tuple[int, int] | None = None) -> dict[int, tuple[np.ndarray, float]]:
    """Segments with a soma: id -> (centre x, y, z nm, inscribed radius nm).

    For a block of a bigger volume: `z_offset` is its first section's index in the volume
    and only voxels in the block's sections `core` [a, b) count."""
    dt = edt.edt(seg, anisotropy=voxel_size_zyx, black_border=False, parallel=2)
    if core is not None:
        dt[:core[0]] = 0
        dt[core[1]:] = 0
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
        centre = np.array([x * voxel_size_zyx[2], y * voxel_size_zyx[1],
                           (z + z_offset) * voxel_size_zyx[0]])
        out[int(flat[idx])] = (centre, float(d[idx]))
    return out


def find_somata_blockwise(read: Callable[[int, int], np.ndarray], n_sections: int,
                          voxel_size_zyx: tuple[float, float, float], slab: int,
                          soma_radius_nm: float = SOMA_RADIUS_NM
                          ) -> dict[int, tuple[np.ndarray, float]]:
    """`find_somata` `slab` sections at a time, each slab read with a halo of sections
    reaching four soma radii: depths up to that are exact, so somata and their centres
    are those of the whole volume unless a cell is deeper than the halo reaches."""
    halo = max(int(np.ceil(4 * soma_radius_nm / voxel_size_zyx[0])), 1)
    best: dict[int, tuple[np.ndarray, float]] = {}
    for z0 in range(0, n_sections, slab):
        z1 = min(z0 + slab, n_sections)
        h0, h1 = max(z0 - halo, 0), min(z1 + halo, n_sections)
        found = find_somata(read(h0, h1), voxel_size_zyx, soma_radius_nm, z_offset=h0,
                            core=(z0 - h0, z1 - h0))
        for sid, (centre, r) in found.items():
            if sid not in best or r > best[sid][1]:
                best[sid] = (centre, r)
    return best


def segment_sizes(seg: np.ndarray) -> dict[int, int]:
    """Voxel count of each non-zero segment."""
    ids, n = np.unique(seg[seg != 0], return_counts=True)
    return dict(zip(ids.tolist(), n.tolist(), strict=True))


def _cable_graph(sk: Skel) -> csr_matrix:
    """The skeleton as a symmetric graph weighted by edge length (nm)."""
    n = len(sk.vertices)
    e = sk.edges.reshape(-1, 2)
    w = np.linalg.norm(sk.vertices[e[:, 0]] - sk.vertices[e[:, 1]], axis=1)
    g = coo_matrix((w, (e[:, 0], e[:, 1])), shape=(n, n)).tocsr()
    return g + g.T


def _by_nearest_site(sk: Skel, presyn_xyz: np.ndarray,
                     postsyn_xyz: np.ndarray) -> np.ndarray:
    """Compartments of a segment without a soma: each vertex takes the role of the
    synapse nearest to it along the cable, axon for a site the segment makes, dendrite
    for one it receives (a tie goes to dendrite); unknown where its piece has none."""
    n = len(sk.vertices)
    comp = np.full(n, COMP_NONE, np.uint8)
    g = _cable_graph(sk)
    tree = cKDTree(sk.vertices)
    dist = []
    for xyz in (presyn_xyz, postsyn_xyz):
        if len(xyz) == 0:
            dist.append(np.full(n, np.inf))
            continue
        _, at = tree.query(np.asarray(xyz, float).reshape(-1, 3))
        dist.append(dijkstra(g, indices=np.unique(at), min_only=True))
    d_pre, d_post = dist
    comp[np.isfinite(d_pre) & (d_pre < d_post)] = COMP_AXON
    comp[np.isfinite(d_post) & (d_post <= d_pre)] = COMP_DENDRITE
    return comp


def soma_branches(sk: Skel, soma: tuple[np.ndarray, float]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(in_soma, branch, path) per vertex: within 1.15 soma radii of the centre; the
    branch (connected piece of the skeleton without those vertices); the cable from the
    vertex nearest the centre (inf on pieces the skeleton does not join to it)."""
    n = len(sk.vertices)
    centre, rs = soma
    dist_c = np.linalg.norm(sk.vertices - centre, axis=1)
    in_soma = dist_c <= 1.15 * rs
    e = sk.edges
    keep = ~in_soma[e[:, 0]] & ~in_soma[e[:, 1]]
    gb = coo_matrix((np.ones(keep.sum()), (e[keep, 0], e[keep, 1])), shape=(n, n))
    _, branch = connected_components(gb, directed=False)
    path = dijkstra(_cable_graph(sk), indices=int(np.argmin(dist_c)))
    return in_soma, branch, path


def label_compartments(sk: Skel, soma: tuple[np.ndarray, float] | None,
                       presyn_xyz: np.ndarray, postsyn_xyz: np.ndarray | None = None,
                       ais_length_nm: float = AIS_LENGTH_NM) -> np.ndarray:
    """Compartment code per skeleton vertex (see module docstring). `presyn_xyz` and
    `postsyn_xyz` (nm) are the synapses the segment makes and receives."""
    n = len(sk.vertices)
    comp = np.full(n, COMP_NONE, np.uint8)
    if n == 0:
        return comp
    received = np.zeros((0, 3)) if postsyn_xyz is None else postsyn_xyz
    if soma is None:
        return _by_nearest_site(sk, presyn_xyz, received)
    in_soma, branch, path = soma_branches(sk, soma)
    comp[in_soma] = COMP_SOMA
    rest = np.nonzero(~in_soma)[0]
    if len(rest) == 0:
        return comp
    reached = np.isfinite(path[rest])
    loose = rest[~reached]  # pieces the skeleton does not join to the soma
    if len(loose):
        comp[loose] = _by_nearest_site(sk, presyn_xyz, received)[loose]
    attached = rest[reached]
    if len(attached) == 0:
        return comp
    comp[attached] = COMP_DENDRITE
    axon, thinnest = -1, np.inf
    for b in np.unique(branch[attached]).tolist():
        idx = attached[branch[attached] == b]
        d = path[idx] - path[idx].min()  # cable from where the branch leaves the soma
        calibre = float(np.median(sk.radius[idx[d <= ais_length_nm]]))
        if calibre < thinnest:
            axon, thinnest = b, calibre
    ax = attached[branch[attached] == axon]
    comp[ax] = COMP_AXON
    # the AIS runs straight: its length is measured as the distance from where the
    # branch leaves the soma (a skeleton's path zig-zags between voxels and overstates
    # its cable by a fifth or so), on the part within twice that length of cable
    first = ax[np.argmin(path[ax])]
    straight = np.linalg.norm(sk.vertices[ax] - sk.vertices[first], axis=1)
    comp[ax[(straight <= ais_length_nm)
            & (path[ax] - path[first] <= 2 * ais_length_nm)]] = COMP_AIS
    return comp


def annotate(seg: np.ndarray, syn: pd.DataFrame, voxel_size_zyx: tuple[float, float, float],
             skels: dict[int, Skel]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Segments table and synapses with `post_compartment`; fills each Skel.compartment."""
    return annotate_tables(find_somata(seg, voxel_size_zyx), segment_sizes(seg), syn, skels)


def annotate_tables(somata: dict[int, tuple[np.ndarray, float]], sizes: dict[int, int],
                    syn: pd.DataFrame, skels: dict[int, Skel]
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`annotate` from the segments' somata and sizes (found whole or slab by slab)."""
    xyz = syn[["x", "y", "z"]].to_numpy(float) if len(syn) else np.zeros((0, 3))
    pre = syn["pre_segment_id"].to_numpy(np.int64) if len(syn) else np.zeros(0, np.int64)
    post = syn["post_segment_id"].to_numpy(np.int64) if len(syn) else np.zeros(0, np.int64)
    for sid, sk in skels.items():
        sk.compartment = label_compartments(sk, somata.get(sid), xyz[pre == sid],
                                            xyz[post == sid])
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
    for sid, size in sorted(sizes.items()):
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
