"""Skeletons (kimimaro), somata, compartments and cell classes (pure logic, no I/O).

- Soma: a segment whose largest inscribed radius (anisotropic EDT) reaches `soma_radius_nm`.
- Compartments: vertices near the soma are soma. Of the branches the skeleton joins to the soma,
  the axon is the one thinnest over its first `ais_length_nm` of cable (an axon initial segment is
  thinner than the base of a dendrite), and that first stretch of it is the AIS; the other
  branches are dendrite. On the true segmentations of `bench/reconstruct/compartments.py` this
  finds the axon of 19 of 23 cells; taking the branch with most presynaptic sites found 10 (a
  bouton's nearest vertex often lies on a dendrite of its own cell).
  Pieces not joined to a soma take the role of their nearest synapse along the cable: axon where
  it is one the segment makes, dendrite where it receives it.
- Class: a segment making >= 2 synapses with at least half onto AISs is a chandelier cell (that is
  what defines them); else one with a soma is pyramidal; else unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import edt
import kimimaro
import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree

from connectome_query.schema.vocabulary import CHANDELIER, PYRAMIDAL, Compartment

AIS_LENGTH_NM = 450.0
"""Cable from the soma that the compartment rule marks as axon initial segment, and over which
it compares the branches' calibre. Real AISs are 20-60 um long; this default suits cells at the
scale of the synthetic volumes (whose cells are scaled down to fit 64^3 voxels). Set it for real
data."""
UNKNOWN_CLASS = "unknown"
"""The cell class of a segment that is neither chandelier nor pyramidal."""
SOMA_RADIUS_NM = 135.0
"""Inscribed radius from which a segment counts as having a soma."""
SOMA_SHELL = 1.15
"""Skeleton vertices within this many soma radii of the soma's centre are soma."""


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


def join_regions(sk: Skel, region: np.ndarray) -> Skel:
    """`sk` with its pieces joined where they meet in one region of a block face.

    `region[i]` names the connected region (of the segmentation's plane shared by two
    blocks, 8-connected) that vertex i lies in, or is -1. Vertices in one region belong to
    one piece of tissue: where they fall into several unconnected parts of the skeleton,
    each further part is linked to the first by its closest pair of vertices."""
    n = len(sk.vertices)
    on = np.flatnonzero(region >= 0)
    if n == 0 or len(on) < 2:
        return sk
    g = coo_matrix((np.ones(len(sk.edges)), (sk.edges[:, 0], sk.edges[:, 1])), shape=(n, n))
    _, part = connected_components(g, directed=False)
    extra = []
    for r in np.unique(region[on]):
        idx = on[region[on] == r]
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


def soma_halo(voxel_size_zyx: tuple[float, float, float],
              soma_radius_nm: float = SOMA_RADIUS_NM) -> tuple[int, int, int]:
    """Voxels of context that make `somata_in` exact for cells up to four soma radii deep."""
    return tuple(max(int(np.ceil(4 * soma_radius_nm / v)), 1)  # type: ignore[return-value]
                 for v in voxel_size_zyx)


def somata_in(seg: np.ndarray, voxel_size_zyx: tuple[float, float, float],
              soma_radius_nm: float = SOMA_RADIUS_NM, origin: tuple[int, int, int] = (0, 0, 0),
              volume: tuple[int, int, int] | None = None,
              core: tuple[tuple[int, int, int], tuple[int, int, int]] | None = None
              ) -> np.ndarray:
    """Soma candidates of an array (a volume, or a block's region of one): rows (segment,
    inscribed radius nm, flat index in the volume of the deepest voxel) (n, 3) float64, one
    per segment whose inscribed radius (anisotropic EDT) reaches `soma_radius_nm` at a voxel
    of `core` (region coordinates; all of it by default). Of equally deep voxels the first
    in raster order is taken, so blocks' candidates combine (`best_somata`) to the whole
    volume's answer."""
    volume = volume or seg.shape
    assert volume is not None
    dt = edt.edt(seg, anisotropy=voxel_size_zyx, black_border=False, parallel=1)
    if core is not None:
        keep = np.zeros(seg.shape, bool)
        keep[tuple(slice(a, b) for a, b in zip(*core, strict=True))] = True
        dt[~keep] = 0
    d = dt.reshape(-1)
    big = np.flatnonzero(d >= soma_radius_nm)
    if len(big) == 0:
        return np.zeros((0, 3))
    order = big[np.argsort(-d[big], kind="stable")]  # ties: the first in raster order
    labs = seg.reshape(-1)[order]
    _, at = np.unique(labs, return_index=True)
    idx = order[at]
    zyx = np.array(np.unravel_index(idx, seg.shape)).T + np.array(origin)
    flat = np.ravel_multi_index(tuple(zyx.T), volume)
    return np.stack([labs[at].astype(np.float64), d[idx].astype(np.float64),
                     flat.astype(np.float64)], axis=1)


def best_somata(rows: np.ndarray, voxel_size_zyx: tuple[float, float, float],
                volume: tuple[int, int, int]) -> dict[int, tuple[np.ndarray, float]]:
    """Segment -> (soma centre x, y, z nm, inscribed radius nm) from candidates of
    `somata_in`: each segment's deepest, the first in raster order of equally deep ones."""
    out: dict[int, tuple[np.ndarray, float]] = {}
    if len(rows) == 0:
        return out
    rows = rows[np.lexsort((rows[:, 2], -rows[:, 1], rows[:, 0]))]
    _, at = np.unique(rows[:, 0], return_index=True)
    for sid, r, flat in rows[at]:
        z, y, x = np.unravel_index(int(flat), volume)
        centre = np.array([x * voxel_size_zyx[2], y * voxel_size_zyx[1], z * voxel_size_zyx[0]])
        out[int(sid)] = (centre, float(r))
    return out


def find_somata(seg: np.ndarray, voxel_size_zyx: tuple[float, float, float],
                soma_radius_nm: float = SOMA_RADIUS_NM) -> dict[int, tuple[np.ndarray, float]]:
    """Segments with a soma: id -> (centre x, y, z nm, inscribed radius nm)."""
    return best_somata(somata_in(seg, voxel_size_zyx, soma_radius_nm), voxel_size_zyx,
                       seg.shape)


def parents(sk: Skel) -> np.ndarray:
    """Each vertex's parent (-1 for roots), edges oriented away from the first vertex of
    each connected piece by a depth-first walk."""
    n = len(sk.vertices)
    parent = np.full(n, -1, np.int64)
    adj: dict[int, list[int]] = {}
    for a, b in sk.edges.tolist():
        adj.setdefault(a, []).append(b)
        adj.setdefault(b, []).append(a)
    seen = np.zeros(n, bool)
    for r in range(n):
        if seen[r]:
            continue
        seen[r] = True
        stack = [r]
        while stack:
            u = stack.pop()
            for w in adj.get(u, []):
                if not seen[w]:
                    seen[w] = True
                    parent[w] = u
                    stack.append(w)
    return parent


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
    comp = np.full(n, Compartment.UNKNOWN, np.uint8)
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
    comp[np.isfinite(d_pre) & (d_pre < d_post)] = Compartment.AXON
    comp[np.isfinite(d_post) & (d_post <= d_pre)] = Compartment.DENDRITE
    return comp


def soma_branches(sk: Skel, soma: tuple[np.ndarray, float]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(in_soma, branch, path) per vertex: within SOMA_SHELL soma radii of the centre; the
    branch (connected piece of the skeleton without those vertices); the cable from the
    vertex nearest the centre (inf on pieces the skeleton does not join to it)."""
    n = len(sk.vertices)
    centre, rs = soma
    dist_c = np.linalg.norm(sk.vertices - centre, axis=1)
    in_soma = dist_c <= SOMA_SHELL * rs
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
    comp = np.full(n, Compartment.UNKNOWN, np.uint8)
    if n == 0:
        return comp
    received = np.zeros((0, 3)) if postsyn_xyz is None else postsyn_xyz
    if soma is None:
        return _by_nearest_site(sk, presyn_xyz, received)
    in_soma, branch, path = soma_branches(sk, soma)
    comp[in_soma] = Compartment.SOMA
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
    comp[attached] = Compartment.DENDRITE
    axon, thinnest = -1, np.inf
    for b in np.unique(branch[attached]).tolist():
        idx = attached[branch[attached] == b]
        d = path[idx] - path[idx].min()  # cable from where the branch leaves the soma
        calibre = float(np.median(sk.radius[idx[d <= ais_length_nm]]))
        if calibre < thinnest:
            axon, thinnest = b, calibre
    ax = attached[branch[attached] == axon]
    comp[ax] = Compartment.AXON
    # the AIS runs straight: its length is measured as the distance from where the
    # branch leaves the soma (a skeleton's path zig-zags between voxels and overstates
    # its cable by a fifth or so), on the part within twice that length of cable
    first = ax[np.argmin(path[ax])]
    straight = np.linalg.norm(sk.vertices[ax] - sk.vertices[first], axis=1)
    comp[ax[(straight <= ais_length_nm)
            & (path[ax] - path[first] <= 2 * ais_length_nm)]] = Compartment.AIS
    return comp


def annotate(seg: np.ndarray, syn: pd.DataFrame, voxel_size_zyx: tuple[float, float, float],
             skels: dict[int, Skel]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Segments table and synapses with `post_compartment`; fills each Skel.compartment."""
    return annotate_tables(find_somata(seg, voxel_size_zyx), segment_sizes(seg), syn, skels)


def label_all(skels: dict[int, Skel], somata: dict[int, tuple[np.ndarray, float]],
              syn: pd.DataFrame) -> None:
    """Fill the compartments of `skels` from their somata and the synapses (all that the
    segments make and receive)."""
    xyz = syn[["x", "y", "z"]].to_numpy(float) if len(syn) else np.zeros((0, 3))
    pre = syn["pre_segment_id"].to_numpy(np.int64) if len(syn) else np.zeros(0, np.int64)
    post = syn["post_segment_id"].to_numpy(np.int64) if len(syn) else np.zeros(0, np.int64)
    for sid, sk in skels.items():
        sk.compartment = label_compartments(sk, somata.get(sid), xyz[pre == sid],
                                            xyz[post == sid])


def post_compartments(syn: pd.DataFrame, skels: dict[int, Skel]) -> list[str]:
    """The compartment of each synapse's postsynaptic site: that of the vertex of the
    postsynaptic segment's skeleton nearest to it (unknown without a skeleton)."""
    out = []
    for x, y, z, post in zip(syn["x"], syn["y"], syn["z"], syn["post_segment_id"],
                             strict=True):
        target = skels.get(int(post))
        if target is None or len(target.vertices) == 0:
            out.append(Compartment.UNKNOWN.label)
            continue
        k = int(np.argmin(np.linalg.norm(target.vertices - np.array([x, y, z]), axis=1)))
        out.append(Compartment(int(target.compartment[k])).label)
    return out


def segment_table(somata: dict[int, tuple[np.ndarray, float]], sizes: dict[int, int],
                  syn: pd.DataFrame) -> pd.DataFrame:
    """One row per segment: size, soma centre, predicted class (from `syn`, which carries
    `post_compartment`)."""
    made = syn.groupby("pre_segment_id")["post_compartment"] if len(syn) else None
    n_out = made.size().to_dict() if made is not None else {}
    n_ais = (syn[syn["post_compartment"] == Compartment.AIS.label]
             .groupby("pre_segment_id").size().to_dict() if len(syn) else {})
    rows = []
    for sid, size in sorted(sizes.items()):
        soma = somata.get(int(sid))
        n, a = n_out.get(sid, 0), n_ais.get(sid, 0)
        if n >= 2 and a * 2 >= n:
            cls = CHANDELIER
        elif soma is not None:
            cls = PYRAMIDAL
        else:
            cls = UNKNOWN_CLASS
        c = soma[0] if soma is not None else (None, None, None)
        rows.append((int(sid), int(size), c[0], c[1], c[2], cls))
    return pd.DataFrame(rows, columns=["segment_id", "size_voxels", "soma_x", "soma_y",
                                       "soma_z", "predicted_class"])


def annotate_tables(somata: dict[int, tuple[np.ndarray, float]], sizes: dict[int, int],
                    syn: pd.DataFrame, skels: dict[int, Skel]
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`annotate` from the segments' somata and sizes (found whole or block by block)."""
    label_all(skels, somata, syn)
    syn = syn.copy()
    syn["post_compartment"] = pd.Series(post_compartments(syn, skels), index=syn.index,
                                        dtype="string")
    return segment_table(somata, sizes, syn), syn
