"""Somata, skeletons and compartments on the engine.

- Somata: each block's deepest voxels (EDT of the segmentation with a halo of four soma radii)
  are candidates; per segment the deepest wins, the first in raster order among equals
  (`skeleton.somata_in`, `skeleton.best_somata`): the whole volume's somata.
- Skeletons: kimimaro per block, read with one more plane along each axis so that neighbouring
  blocks share a face; each vertex on a shared face is tagged with the connected region of the
  face it lies in (both blocks label the face alike). Pieces are written per group of segments,
  then each group is assembled in one task: a segment's pieces merged at shared vertices and
  joined where they meet in one region of a face (`skeleton.merge_pieces`,
  `skeleton.join_regions`), compartments labelled from the soma and the synapses, SWC written.
  Skeletons differ from whole-volume ones near the faces (TEASAR's paths depend on the block).
"""

from __future__ import annotations

from pathlib import Path

import cc3d
import numpy as np
import pandas as pd

from connectome_query.reconstruct import io, skeleton
from connectome_query.reconstruct.engine.context import Run, read
from connectome_query.reconstruct.engine.grid import Box
from connectome_query.reconstruct.engine.runner import Engine, Record

MIN_SKELETON_VOXELS = 200
"""Segments under this many voxels in the volume get no skeleton (kimimaro's dust)."""


def _seg(run: Run, box: Box) -> np.ndarray:
    return read(run.path("segmentation.zarr"), box, "segmentation")


def _somata_task(item: int, run: Run) -> Record:
    box = run.grid.box(item)
    region = box.grow(skeleton.soma_halo(run.voxel_size_zyx), run.shape)
    core = (tuple(a - r for a, r in zip(box.lo, region.lo, strict=True)),
            tuple(b - r for b, r in zip(box.hi, region.lo, strict=True)))
    return {"rows": skeleton.somata_in(_seg(run, region), run.voxel_size_zyx,
                                       origin=region.lo, volume=run.shape,
                                       core=core)}  # type: ignore[arg-type]


def somata(engine: Engine, run: Run) -> dict[int, tuple[np.ndarray, float]]:
    recs = engine.run("somata", range(len(run.grid)), _somata_task, run)
    rows = np.concatenate([np.zeros((0, 3)), *recs.gather("rows")])
    return skeleton.best_somata(rows, run.voxel_size_zyx, run.shape)


def _face_keys(run: Run, item: int, region: Box, seg: np.ndarray,
               verts_zyx: np.ndarray) -> np.ndarray:
    """The face region of each vertex (voxel coordinates in the volume) on a face this
    block shares with a neighbour: (upper block * 3 + axis) << 24 | region; -1 elsewhere."""
    keys = np.full(len(verts_zyx), -1, np.int64)
    grid = run.grid
    idx = grid.index(item)
    for axis in range(3):
        for plane, upper in ((region.lo[axis], item), (region.hi[axis] - 1, None)):
            if plane == 0 or (upper is None and region.hi[axis] == run.shape[axis]):
                continue
            if upper is None:
                up = list(idx)
                up[axis] += 1
                upper = grid.number(tuple(up))  # type: ignore[arg-type]
            on = np.flatnonzero((keys < 0) & (np.abs(verts_zyx[:, axis] - plane) < 1e-3))
            if not len(on):
                continue
            sl = [slice(None)] * 3
            sl[axis] = slice(plane - region.lo[axis], plane - region.lo[axis] + 1)
            face = cc3d.connected_components(np.squeeze(seg[tuple(sl)], axis=axis),
                                             connectivity=8)
            rest = [a for a in range(3) if a != axis]
            at = np.clip(np.round(verts_zyx[on][:, rest]).astype(np.int64)
                         - np.array(region.lo)[rest], 0, np.array(face.shape) - 1)
            r = face[at[:, 0], at[:, 1]].astype(np.int64)
            keys[on] = np.where(r > 0, ((upper * 3 + axis) << 24) | r, -1)
    return keys


def _skeleton_task(item: int, run: Run, sizes_path: str, groups: int) -> Record:
    box = run.grid.box(item)
    region = Box(box.lo, tuple(min(b + 1, s) for b, s in  # type: ignore[arg-type]
                              zip(box.hi, run.shape, strict=True)))
    seg = _seg(run, region)
    size = np.load(sizes_path, mmap_mode="r")
    small = np.asarray(size[seg.reshape(-1).astype(np.int64)]).reshape(seg.shape) \
        < MIN_SKELETON_VOXELS
    masked = np.where(small, np.uint64(0), seg)
    vs = np.array(run.voxel_size_zyx)
    parts: dict[int, list[tuple[int, skeleton.Skel]]] = {}
    for sid, sk in skeleton.skeletonize(masked, run.voxel_size_zyx, min_voxels=1).items():
        sk.vertices += (np.array(region.lo) * vs)[::-1]
        parts.setdefault(sid % groups, []).append((sid, sk))
    for g, pieces in parts.items():
        verts = np.concatenate([sk.vertices for _, sk in pieces])
        base = np.cumsum([0] + [len(sk.vertices) for _, sk in pieces[:-1]])
        keys = _face_keys(run, item, region, seg, verts[:, ::-1] / vs)
        out = run.work(f"skeleton-pieces/{g}/{item}.npz")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp.npz")
        np.savez(tmp, sid=np.concatenate([np.full(len(sk.vertices), sid, np.int64)
                                          for sid, sk in pieces]),
                 vertices=verts, radius=np.concatenate([sk.radius for _, sk in pieces]),
                 keys=keys, edges=np.concatenate([sk.edges + b for (_, sk), b in
                                                  zip(pieces, base, strict=True)]))
        tmp.replace(out)
    return {}


def _assemble(folder: Path) -> dict[int, skeleton.Skel]:
    """The skeletons of one group of segments from their blocks' pieces."""
    pieces: dict[int, list[tuple[skeleton.Skel, np.ndarray]]] = {}
    for f in sorted(folder.glob("*.npz")):
        with np.load(f) as z:
            sid, verts, radius, keys, edges = (z[k] for k in ("sid", "vertices", "radius",
                                                                "keys", "edges"))
        for s in np.unique(sid):
            idx = np.flatnonzero(sid == s)
            lut = np.full(len(sid), -1, np.int64)
            lut[idx] = np.arange(len(idx))
            e = edges[(sid[edges[:, 0]] == s)]
            pieces.setdefault(int(s), []).append(
                (skeleton.Skel(verts[idx], lut[e], radius[idx]), keys[idx]))
    out = {}
    for s, parts in sorted(pieces.items()):
        sk = skeleton.merge_pieces([p for p, _ in parts])
        allv = np.concatenate([p.vertices for p, _ in parts])
        _, inv = np.unique(np.round(allv, 2), axis=0, return_inverse=True)
        keys = np.full(len(sk.vertices), -1, np.int64)
        np.maximum.at(keys, inv.reshape(-1), np.concatenate([k for _, k in parts]))
        out[s] = skeleton.join_regions(sk, keys)
    return out


def _assemble_task(item: int, run: Run, somata_path: str, synapses_path: str) -> Record:
    """Skeletons of group `item`: assembled, labelled, written as SWC; the compartments of
    the synapses they receive."""
    skels = _assemble(run.work(f"skeleton-pieces/{item}"))
    with np.load(somata_path) as z:
        som = {int(s): (c, float(r)) for s, c, r in zip(z["sid"], z["centre"], z["radius"],
                                                         strict=True)}
    syn = pd.read_parquet(synapses_path)
    mine = syn[syn["pre_segment_id"].isin(skels) | syn["post_segment_id"].isin(skels)]
    skeleton.label_all(skels, som, mine)
    folder = run.path("skeletons")
    for sid, sk in skels.items():
        n = len(sk.vertices)
        if n == 0:
            continue
        parent = skeleton.parents(sk)
        io.write_swc(folder / f"{sid}.swc", np.arange(1, n + 1), sk.compartment, sk.vertices,
                     sk.radius, np.where(parent >= 0, parent + 1, -1))
    received = syn[syn["post_segment_id"].isin(skels)]
    return {"synapse_id": received["synapse_id"].to_numpy(np.int64),
            "post_compartment": np.array(skeleton.post_compartments(received, skels), str)}


def skeletons(engine: Engine, run: Run, sizes: dict[int, int],
              soma: dict[int, tuple[np.ndarray, float]], syn: pd.DataFrame) -> pd.DataFrame:
    """Skeletons of all segments (SWC files) and the synapses' `post_compartment`."""
    top = max(sizes, default=0)
    size = np.zeros(top + 1, np.int64)
    for s, n in sizes.items():
        size[s] = n
    sizes_path = run.work("segment_sizes.npy")
    np.save(sizes_path, size)
    groups = int(np.clip(sum(n >= MIN_SKELETON_VOXELS for n in sizes.values()) // 200, 1, 64))
    engine.run("skeletons", range(len(run.grid)), _skeleton_task, run, str(sizes_path),
               groups)
    somata_path = run.work("somata.npz")
    ids = sorted(soma)
    np.savez(somata_path, sid=np.array(ids, np.int64),
             centre=np.array([soma[s][0] for s in ids]).reshape(-1, 3),
             radius=np.array([soma[s][1] for s in ids], float))
    synapses_path = run.work("synapses_found.parquet")
    syn.to_parquet(synapses_path, index=False)
    (run.path("skeletons")).mkdir(parents=True, exist_ok=True)
    recs = engine.run("compartments", range(groups), _assemble_task, run, str(somata_path),
                      str(synapses_path))
    comp = dict(zip(np.concatenate([np.zeros(0, np.int64), *recs.gather("synapse_id")]),
                    np.concatenate([np.zeros(0, str), *recs.gather("post_compartment")]),
                    strict=True))
    syn = syn.copy()
    syn["post_compartment"] = pd.Series([comp.get(int(i), "unknown") for i in
                                         syn["synapse_id"]], index=syn.index, dtype="string")
    return syn
