"""The generator's truth seen in a volume's own frame (the aligned frame of `connectome prepare`).

A raw directory's truth (`truth/undeformed/truth`: cells, clefts, compartments, skeletons,
synapses) is in the frame of the undeformed tissue; a prepared volume is in the aligned frame,
7-35 px away in every section. For every pixel p of section z the known transforms give the
undeformed position q it shows:

    aligned p --maps.zarr--> stitched s --tile placements: the stitch's (EM_DIR/tiles.parquet),
    then the true ones (RAW_DIR/truth/tiles.parquet)--> deformed section position
    --+ D (RAW_DIR/truth/deformation.zarr)--> undeformed q

(`evaluate.tissue_positions`). Labels are read at q (nearest voxel); points (skeleton nodes,
synapses, somata) move to the pixel whose q is nearest to them, within `MAX_POINT_PX`
(scaled by the local pixel spacing where the frame stretches the tissue). Where
the truth cannot be known the label is 0 and points there are dropped, so the scores leave those
places out as they leave out voxels outside every cell: pixels no used tile covers, q outside
the volume, the true band of a fold or crack, and sections missing from the raw directory.
A synapse is judged by its cleft, as the generator's own truth is (`synth.truth`): it stays in
the truth when at least `MIN_TRUTH_CLEFT_VOXELS` of its cleft voxels are known in the frame,
at its moved centroid, or at the centroid of its known cleft voxels where the centroid itself
is not shown (it lies in a missing section while the cleft shows on the next one), and it
leaves the truth when fewer are known. Everything runs section by section.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from connectome_query.reconstruct import io
from connectome_query.reconstruct.align import evaluate, stitch, warp
from connectome_query.reconstruct.align.masks import Defect, has
from connectome_query.reconstruct.align.rawdir import read_raw_info
from connectome_query.reconstruct.errors import ReconstructError
from connectome_query.reconstruct.progress import Tick, no_progress
from connectome_query.reconstruct.scoring import TISSUE_XYZ
from connectome_query.reconstruct.synth.truth import MIN_TRUTH_CLEFT_VOXELS

MAX_POINT_PX = 1.0
"""A point moves to the pixel showing the nearest tissue position when that is this close (px,
times the frame's local pixel spacing in the tissue where it stretches it); tissue hidden under
a fold, or outside the imaged area, is shown by no pixel."""
LABEL_VOLUMES = ("segmentation", "clefts", "compartments")
"""Truth volumes carried into the frame (nearest voxel; 0 where unknown)."""


@dataclass
class CleftTally:
    """Per synapse id: known cleft voxels in the frame and the sums of their (x, y, z) in
    voxels, added section by section."""

    count: np.ndarray
    sums: np.ndarray  # (ids, 3)

    @classmethod
    def empty(cls, n_ids: int) -> CleftTally:
        return cls(np.zeros(n_ids, np.int64), np.zeros((n_ids, 3)))

    def add(self, clefts: np.ndarray, z: int) -> None:
        """Add one carried cleft section (y, x; 0 where unknown or no cleft); ids beyond the
        tally's range are ignored."""
        yy, xx = np.nonzero(clefts)
        ids = clefts[yy, xx].astype(np.int64)
        ok = ids < len(self.count)
        ids, yy, xx = ids[ok], yy[ok], xx[ok]
        self.count += np.bincount(ids, minlength=len(self.count))
        for k, v in enumerate((xx, yy, np.full(len(ids), z))):
            self.sums[:, k] += np.bincount(ids, weights=v.astype(np.float64),
                                           minlength=len(self.count))

    def visible(self, ids: np.ndarray) -> np.ndarray:
        """Whether each synapse's cleft shows in the frame (`MIN_TRUTH_CLEFT_VOXELS`)."""
        ids = np.asarray(ids, np.int64)
        ok = (ids >= 0) & (ids < len(self.count))
        return ok & (self.count[np.where(ok, ids, 0)] >= MIN_TRUTH_CLEFT_VOXELS)

    def centroids(self, ids: np.ndarray) -> np.ndarray:
        """(x, y, z) voxel centroid of each synapse's known cleft voxels (NaN where none)."""
        ids = np.asarray(ids, np.int64)
        n = self.count[ids].astype(np.float64)[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, self.sums[ids] / n, np.nan)


@dataclass
class Placement:
    """How each section of a volume was made from its tiles: tile placements (the stitched
    frame) and the map from the volume's frame into it."""

    origins: np.ndarray  # (z, rows, cols, 2) tile origins, px
    rotations: np.ndarray  # (z, rows, cols) radians about the tile centre
    used: np.ndarray  # (z, rows, cols) bool: the tile's pixels are in the section
    nodes: np.ndarray  # (z, gy, gx, 2) map nodes (`warp`)
    stride: int


def _tile_table(path: Path, grid: tuple[int, int], nz: int, what: str
                ) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    df = io.read_table(path, what, {"section": "", "row": "", "col": "", "origin_y": "",
                                    "origin_x": "", "rotation_rad": ""})
    rows, cols = grid
    if len(df) != nz * rows * cols:
        raise ReconstructError(f"{what}: {path} has {len(df)} rows, expected one per section "
                               f"and tile ({nz} x {rows} x {cols})")
    df = df.sort_values(["section", "row", "col"]).reset_index(drop=True)
    origins = df[["origin_y", "origin_x"]].to_numpy(np.float64).reshape(nz, rows, cols, 2)
    rotations = df["rotation_rad"].to_numpy(np.float64).reshape(nz, rows, cols)
    return origins, rotations, df


def read_placement(em_dir: Path, grid: tuple[int, int], nz: int) -> Placement:
    """A prepared EM directory's tile placements (tiles.parquet) and maps (maps.zarr)."""
    em = Path(em_dir)
    path = em / "tiles.parquet"
    if not path.exists():
        raise ReconstructError(f"tile placements: {path} is missing (written by `connectome "
                               f"prepare`; prepare the raw directory again)")
    origins, rotations, df = _tile_table(path, grid, nz, "tile placements")
    used = df["used"].to_numpy(bool).reshape(origins.shape[:3]) if "used" in df else \
        np.ones(origins.shape[:3], bool)
    maps = io.open_zarr(em / "maps.zarr", "maps")
    nodes = io.read_block(maps, (slice(None),) * 4, em / "maps.zarr", "maps").astype(np.float64)
    stride = int(io.read_json(em / "maps.zarr" / "zarr.json", "maps")
                 .get("attributes", {}).get("stride", 0))
    if stride < 1:
        raise ReconstructError(f"maps: {em / 'maps.zarr'} has no 'stride' attribute")
    if nodes.shape[0] != nz:
        raise ReconstructError(f"maps: {em / 'maps.zarr'} has {nodes.shape[0]} sections, "
                               f"the raw directory {nz}")
    return Placement(origins, rotations, used, nodes, stride)


def tile_to_section(origin: np.ndarray, theta: float, tile_shape: tuple[int, int],
                    u: np.ndarray) -> np.ndarray:
    """Section positions (.., 2) of tile pixels u (.., 2) for a tile at `origin` turned by
    `theta` about its centre (the placement `stitch.tile_coordinates` inverts)."""
    centre = (np.array(tile_shape, np.float64) - 1) / 2
    c, s = np.cos(theta), np.sin(theta)
    return origin + centre + (u - centre) @ np.array([[c, -s], [s, c]]).T


def stitched_truth(placed: tuple[np.ndarray, np.ndarray, np.ndarray],
                   true: tuple[np.ndarray, np.ndarray], layout: stitch.Layout
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(true section position of every stitched pixel (y, x, 2), covered (y, x)): each pixel
    blends the true positions of the tiles covering it with the stitch's feathered weights.
    `placed`: the section's (origins, rotations, used) as stitched; `true`: (origins,
    rotations) as imaged."""
    ny, nx = layout.section_shape
    p = np.moveaxis(np.mgrid[0:ny, 0:nx], 0, -1).astype(np.float64)
    origins, rotations, used = placed
    acc = np.zeros((ny, nx, 2))
    wsum = np.zeros((ny, nx))
    rows, cols = layout.grid
    for r in range(rows):
        for c in range(cols):
            if not used[r, c]:
                continue
            u = stitch.tile_coordinates(p, origins[r, c], rotations[r, c], layout.tile_shape)
            w = stitch.feather(layout.tile_shape, u, max(layout.overlap / 2, 1.0))
            w = np.where(w >= 0, w + 1e-3, 0.0)
            acc += w[..., None] * tile_to_section(true[0][r, c], true[1][r, c],
                                                  layout.tile_shape, u)
            wsum += w
    return acc / np.maximum(wsum, 1e-12)[..., None], wsum > 0


def section_positions(coords: np.ndarray, src: np.ndarray, covered: np.ndarray,
                      deformation: np.ndarray, true_mask: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(undeformed position q (y, x, 2) shown by each pixel of a section, known (y, x)) from
    the pixels' stitched source coordinates (2, y, x), the stitched truth (`stitched_truth`),
    the true deformation (2, y, x) and the true defect mask (y, x)."""
    q = evaluate.tissue_positions(coords, src, deformation)
    known = evaluate.valid_tissue(coords, src, true_mask, covered, q, margin=0)
    if has(true_mask, Defect.MISSING).any():
        known[:] = False
    return q, known


def labels_at(volume: np.ndarray, q: np.ndarray, known: np.ndarray) -> np.ndarray:
    """A truth section (y, x) read at positions q (nearest voxel); 0 where not known."""
    ny, nx = volume.shape
    i = np.clip(np.round(q).astype(np.int64), 0, [ny - 1, nx - 1])
    return np.where(known, volume[i[..., 0], i[..., 1]], 0).astype(volume.dtype)


def pixel_spacing(q: np.ndarray, known: np.ndarray) -> np.ndarray:
    """(y, x) the largest distance in the tissue between a known pixel's q and its known 4
    neighbours' (1 where the frame neither stretches nor shrinks the tissue; a fold's band,
    not known, is no neighbour)."""
    step = np.zeros(q.shape[:2])
    for axis in (0, 1):
        lo = tuple(slice(None, -1) if a == axis else slice(None) for a in (0, 1))
        hi = tuple(slice(1, None) if a == axis else slice(None) for a in (0, 1))
        d = np.where(known[lo] & known[hi], np.linalg.norm(q[hi] - q[lo], axis=-1), 0.0)
        step[lo] = np.maximum(step[lo], d)
        step[hi] = np.maximum(step[hi], d)
    return step


def move_points(points: np.ndarray, q: np.ndarray, known: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """(pixels (n, 2) showing the undeformed positions `points` (n, 2, y x px), found (n,)):
    the pixel whose q is nearest, when within `MAX_POINT_PX` times the frame's local pixel
    spacing in the tissue (at least 1: where the frame stretches the tissue its pixels lie
    further apart there)."""
    out = np.zeros((len(points), 2), np.float64)
    if not len(points) or not known.any():
        return out, np.zeros(len(points), bool)
    where = np.argwhere(known)
    dist, idx = cKDTree(q[known]).query(points)
    reach = MAX_POINT_PX * np.maximum(pixel_spacing(q, known)[known], 1.0)
    found = dist <= reach[idx]
    out[found] = where[idx[found]]
    return out, found


def _move_table(df: pd.DataFrame, cols: tuple[str, str, str], vs_zyx: np.ndarray, z: int,
                q: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of a table whose (x, y, z) nm lie in section z: (row indices, new x, y nm, found)."""
    zn = df[cols[2]].to_numpy(np.float64)
    zz = np.where(np.isfinite(zn), np.round(np.nan_to_num(zn) / vs_zyx[0]), -1).astype(np.int64)
    rows = np.flatnonzero(zz == z)
    yx = df[[cols[1], cols[0]]].to_numpy(np.float64)[rows] / vs_zyx[1:]
    moved, found = move_points(yx, q, known)
    return rows, moved * vs_zyx[1:], found


def write_truth_in_frame(raw_dir: Path, em_dir: Path, placement: Placement | None = None,
                         tick: Tick = no_progress) -> dict[str, float]:
    """Write EM_DIR/truth (RUN_DIR.md) in the frame of EM_DIR's volume, from RAW_DIR's truth and
    `placement` (default: EM_DIR's, as `connectome prepare` wrote it). Also truth/known.zarr
    (uint8, 1 where the truth is known). Returns the fractions known of voxels, skeleton nodes
    and synapses."""
    raw_dir, em = Path(raw_dir), Path(em_dir)
    info = read_raw_info(raw_dir)
    layout = info.layout
    nz = info.sections
    src_truth = raw_dir / "truth" / "undeformed" / "truth"
    if not src_truth.exists():
        raise ReconstructError(f"truth: {src_truth} is missing (only synthetic raw directories "
                               f"carry their truth)")
    true_o, true_r, _ = _tile_table(raw_dir / "truth" / "tiles.parquet", layout.grid, nz,
                                    "true tiles")
    placement = placement or read_placement(em, layout.grid, nz)
    vx, vy, vz = info.voxel_size_nm_xyz
    vs = np.array([vz, vy, vx], np.float64)
    out = em / "truth"
    out.mkdir(parents=True, exist_ok=True)
    shape = (nz, *layout.section_shape)
    sources = {name: io.open_zarr(src_truth / f"{name}.zarr", f"truth {name}")
               for name in LABEL_VOLUMES if (src_truth / f"{name}.zarr").exists()}
    targets = {name: io.create_zarr(out / f"{name}.zarr", shape, str(st.dtype.numpy_dtype))
               for name, st in sources.items()}
    known_zarr = io.create_zarr(out / "known.zarr", shape, "uint8")
    deformation = io.open_zarr(raw_dir / "truth" / "deformation.zarr", "true deformation")
    true_defects = io.open_zarr(raw_dir / "truth" / "defects.zarr", "true defects")
    tables = _point_tables(src_truth)
    syn_ids = tables["synapses"][0]["synapse_id"].to_numpy(np.int64)
    tally = CleftTally.empty(int(syn_ids.max(initial=0)) + 1) if "clefts" in sources else None
    moved = {k: (df[cols[0]].to_numpy(np.float64).copy(), df[cols[1]].to_numpy(np.float64).copy(),
                 np.zeros(len(df), bool)) for k, (df, cols) in tables.items()}
    known_voxels = 0
    for z in range(nz):
        tick(f"truth of section {z}", z / nz)
        coords = warp.source_coordinates(placement.nodes[z], placement.stride,
                                         layout.section_shape)
        src, covered = stitched_truth((placement.origins[z], placement.rotations[z],
                                       placement.used[z]), (true_o[z], true_r[z]), layout)
        q, known = section_positions(coords, src, covered,
                                     np.asarray(deformation[z].read().result()),
                                     np.asarray(true_defects[z].read().result()))
        known_voxels += int(known.sum())
        known_zarr[z].write(known.astype(np.uint8)).result()
        for name, st in sources.items():
            carried = labels_at(np.asarray(st[z].read().result()), q, known)
            targets[name][z].write(carried).result()
            if name == "clefts" and tally is not None:
                tally.add(carried, z)
        for k, (df, cols) in tables.items():
            rows, xy, found = _move_table(df, cols, vs, z, q, known)
            moved[k][0][rows], moved[k][1][rows] = xy[:, 1], xy[:, 0]
            moved[k][2][rows] = found
    if tally is not None:
        _judge_by_cleft(tables["synapses"][0], moved["synapses"], tally, vs)
    return _write_tables(src_truth, out, tables, moved, known_voxels / float(np.prod(shape)))


def _judge_by_cleft(syn: pd.DataFrame, moved: tuple[np.ndarray, np.ndarray, np.ndarray],
                    tally: CleftTally, vs_zyx: np.ndarray) -> None:
    """Synapses found or not by their cleft in the frame (module docstring), in `moved`
    (x, y nm, found) in place; a synapse placed at its known cleft voxels' centroid takes
    that centroid's z in the table too."""
    ids = syn["synapse_id"].to_numpy(np.int64)
    visible = tally.visible(ids)
    late = visible & ~moved[2]
    if late.any():
        c = tally.centroids(ids[late])
        moved[0][late], moved[1][late] = c[:, 0] * vs_zyx[2], c[:, 1] * vs_zyx[1]
        z = syn["z"].to_numpy(np.float64).copy()
        z[late] = c[:, 2] * vs_zyx[0]
        syn["z"] = z
    moved[2][:] = visible


def _point_tables(src_truth: Path) -> dict[str, tuple[pd.DataFrame, tuple[str, str, str]]]:
    return {"skeletons": (pd.read_parquet(src_truth / "skeletons.parquet"), ("x", "y", "z")),
            "synapses": (pd.read_parquet(src_truth / "synapses.parquet"), ("x", "y", "z")),
            "segments": (pd.read_parquet(src_truth / "segments.parquet"),
                         ("soma_x", "soma_y", "soma_z"))}


def _write_tables(src_truth: Path, out: Path,
                  tables: dict[str, tuple[pd.DataFrame, tuple[str, str, str]]],
                  moved: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
                  known_fraction: float) -> dict[str, float]:
    """Tables with their points moved: skeleton nodes and synapses not found are dropped (an
    edge to a dropped node goes with it), somata not found become null; skeleton nodes keep
    their tissue positions beside (`scoring.TISSUE_XYZ`)."""
    fractions = {"voxels_known": known_fraction}
    for k, (df, cols) in tables.items():
        x, y, found = moved[k]
        df = df.copy()
        if k == "skeletons":  # cable lengths stay the tissue's (`scoring.skeleton_arrays`)
            for c, t in zip(cols, TISSUE_XYZ, strict=True):
                df[t] = df[c]
        df[cols[0]], df[cols[1]] = x, y
        if k == "segments":
            has_soma = df[cols[2]].notna().to_numpy()
            df.loc[has_soma & ~found, list(cols)] = np.nan
        else:
            fractions[f"{k}_known"] = float(found.mean()) if len(found) else 1.0
            df = df[found].reset_index(drop=True)
        df.to_parquet(out / f"{k}.parquet", index=False)
    return fractions

