"""Our segmentation on the engine: three block passes, stitched, then the relabel pass.

Pass by pass (`segment.blocks`), each block reads the affinities with its halo and writes its core
into a working array sharded by the block: `engine/seeds.zarr` (provisional ids of the seed
components), `engine/growth.zarr` (the grown seeds' whole-volume ids, and the rescue's components
under provisional ids with the top bit set), `engine/fragments.zarr` (whole-volume fragment ids).
Each block's record holds the sizes and first voxels of its components, its face planes (for
`segment.blocks.face_pairs`) or its region-graph edges. Between passes the client joins the
components across faces and numbers them for the whole volume (`segment.stitch`; tables of
components, never voxels), saved in `engine/` for the next pass to read. After the third pass it
agglomerates the union of the region graphs into the final id of every fragment, joins the
segments that match across runs of wholly masked sections (`engine.gaps`), and the relabel
pass writes `segmentation.zarr` tile by tile, on the zarr chunks' grid. The answer is the
whole-volume run's, voxel for voxel (tests).
"""

from __future__ import annotations

from pathlib import Path

import fastremap
import numpy as np

from connectome_query.reconstruct import io, lattice
from connectome_query.reconstruct.engine.context import Run, create_sharded, masked, read, write
from connectome_query.reconstruct.engine.gaps import join_gaps
from connectome_query.reconstruct.engine.grid import Box, Grid, aligned
from connectome_query.reconstruct.engine.runner import Engine, Record, Records
from connectome_query.reconstruct.segment import blocks, stitch

TOP = np.uint64(1 << 63)
"""Marks provisional ids of the rescue's components in `engine/growth.zarr`."""


def read_affinities(path: Path, box: Box) -> np.ndarray:
    """Affinities (3, ...) of a box as float32 in [0, 1] (uint8 scaled by 1/255)."""
    a = read(path, box, "affinities", channels=True)
    if a.dtype == np.uint8:
        return np.multiply(a, np.float32(1 / 255), dtype=np.float32)
    a = a.astype(np.float32, copy=False)
    return np.clip(a, 0.0, 1.0, out=a)


def region_affinities(run: Run, path: Path, region: Box) -> np.ndarray:
    """The affinities of a region, links that touch a masked voxel (the volume's defect
    masks) set to 0: no seed, growth or merge passes through a masked voxel, and masked
    voxels stay unlabelled, so they add no face to the region graph."""
    affs = read_affinities(path, region)
    bad, before = masked(run, region, before=True)
    return affs if bad is None else lattice.sever(affs, bad, before)


def core_stats(local: np.ndarray, box: Box, shape: tuple[int, ...]) -> tuple[np.ndarray,
                                                                        np.ndarray]:
    """Sizes and first voxels (flat index in the volume) of the ids 1..n of a core."""
    ids, first, counts = fastremap.unique(local, return_index=True, return_counts=True)
    keep = ids != 0
    zyx = np.array(np.unravel_index(first[keep], local.shape)).reshape(3, -1).T + box.lo
    return (counts[keep].astype(np.int64),
            np.ravel_multi_index(tuple(zyx.T), shape).astype(np.int64))


def _faces(prov: np.ndarray, affs: np.ndarray, core: tuple[slice, ...]) -> Record:
    """A core's first and last planes along each axis (provisional ids), and the
    affinities of its first planes' voxels to the planes before them."""
    out: Record = {}
    for c in range(3):
        first = [slice(None)] * 3
        last = [slice(None)] * 3
        first[c], last[c] = slice(0, 1), slice(-1, None)
        out[f"low{c}"] = prov[tuple(first)]
        out[f"high{c}"] = prov[tuple(last)]
        out[f"aff{c}"] = affs[c][core][tuple(first)]
    return out


def _region(run: Run, item: int, halo: tuple[int, int, int]) -> tuple[Box, Box, tuple[
        tuple[int, int, int], tuple[int, int, int]]]:
    box = run.grid.box(item)
    region = box.grow(halo, run.shape)
    lo = tuple(a - r for a, r in zip(box.lo, region.lo, strict=True))
    hi = tuple(b - r for b, r in zip(box.hi, region.lo, strict=True))
    return box, region, (lo, hi)  # type: ignore[return-value]


def _seeds_task(item: int, run: Run, affs_path: str) -> Record:
    box, region, core = _region(run, item, blocks.halos(run.params, run.voxel_size_zyx).seeds)
    affs = region_affinities(run, Path(affs_path), region)
    local = blocks.seeds(affs, core, run.voxel_size_zyx, run.params)
    prov = stitch.provisional(item, local)
    write(run.work("seeds.zarr"), box, prov)
    sizes, first = core_stats(local, box, run.shape)
    return {"sizes": sizes, "first": first, **_faces(prov, affs, box.slices(region.lo))}


def _growth_task(item: int, run: Run, affs_path: str, numbering: str) -> Record:
    box, region, core = _region(run, item,
                                blocks.halos(run.params, run.voxel_size_zyx).growth)
    affs = region_affinities(run, Path(affs_path), region)
    seeds = load_numbering(Path(numbering)).lookup(read(run.work("seeds.zarr"), region,
                                                        "seeds"))
    grown, local = blocks.growth(affs, seeds, core, run.params)
    prov = stitch.provisional(item, local)
    write(run.work("growth.zarr"), box, np.where(local != 0, prov | TOP, grown))
    sizes, first = core_stats(local, box, run.shape)
    return {"sizes": sizes, "first": first, **_faces(prov, affs, box.slices(region.lo))}


def _fragments_task(item: int, run: Run, affs_path: str, numbering: str) -> Record:
    box, region, core = _region(run, item,
                                blocks.halos(run.params, run.voxel_size_zyx).fragments)
    affs = region_affinities(run, Path(affs_path), region)
    grown = read(run.work("growth.zarr"), region, "growth")
    rescued = (grown & TOP) != 0
    ids = grown.copy()
    ids[rescued] = load_numbering(Path(numbering)).lookup(grown[rescued] & ~TOP)
    frags, (pairs, sums, counts) = blocks.fragments(affs, ids, core, run.params)
    write(run.work("fragments.zarr"), box, frags)
    fid, first, n = fastremap.unique(frags, return_index=True, return_counts=True)
    keep = fid != 0
    zyx = np.array(np.unravel_index(first[keep], frags.shape)).reshape(3, -1).T + box.lo
    return {"ids": fid[keep].astype(np.int64), "sizes": n[keep].astype(np.int64),
            "first": np.ravel_multi_index(tuple(zyx.T), run.shape).astype(np.int64),
            "pairs": pairs, "sums": sums, "counts": counts}


def _faces_task(item: int, run: Run, stage: str, threshold: float) -> Record:
    """Links across the block's faces with the blocks before it."""
    grid = run.grid
    root = run.work(stage)
    here = io_record(root, item)
    out = [np.zeros((0, 2), np.uint64)]
    for c in range(3):
        below = grid.lower_neighbour(item, c)
        if below is None:
            continue
        out.append(blocks.face_pairs(io_record(root, below)[f"high{c}"], here[f"low{c}"],
                                     here[f"aff{c}"], threshold))
    return {"pairs": np.concatenate(out)}


def io_record(root: Path, item: int) -> Record:
    from connectome_query.reconstruct.engine.manifest import load_record

    return load_record(root / f"{item}.npz")


def save_numbering(path: Path, num: stitch.Numbering) -> None:
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(tmp, offsets=num.offsets, ids=num.ids, count=np.int64(num.count))
    tmp.replace(path)


def load_numbering(path: Path) -> stitch.Numbering:
    with np.load(path) as z:
        return stitch.Numbering(z["offsets"], z["ids"], int(z["count"]))


def _number(engine: Engine, run: Run, recs: Records, threshold: float, min_size: int,
            offset: int, name: str) -> tuple[Path, int]:
    faces = engine.run(f"{recs.stage} faces", recs.items, _faces_task, run, recs.stage,
                       threshold)
    pairs = np.concatenate([np.zeros((0, 2), np.uint64), *faces.gather("pairs")])
    num = stitch.number(recs.gather("sizes"), recs.gather("first"), pairs, min_size, offset)
    path = run.work(name)
    save_numbering(path, num)
    return path, num.count


def _relabel_task(item: int, run: Run, lut_path: str) -> Record:
    tiles = Grid(run.shape, aligned(run.block, io.CHUNK))
    box = tiles.box(item)
    lut = np.load(lut_path, mmap_mode="r")
    frags = read(run.work("fragments.zarr"), box, "fragments").astype(np.int64)
    write(run.path("segmentation.zarr"), box, np.asarray(lut[frags.reshape(-1)]).reshape(
        frags.shape))
    return {}


def segment(engine: Engine, run: Run, affs_path: Path) -> dict[int, int]:
    """Segment the volume into `segmentation.zarr`; returns each segment's voxel count."""
    p = run.params
    items = range(len(run.grid))
    for name in ("seeds", "growth", "fragments"):
        create_sharded(run.work(f"{name}.zarr"), run.shape, run.block, "uint64")
    a = str(affs_path)
    seeds = engine.run("seeds", items, _seeds_task, run, a)
    seed_num, n_seeds = _number(engine, run, seeds, p.seed_threshold, max(p.min_seed, 1), 0,
                                "seeds_numbering.npz")
    growth = engine.run("growth", items, _growth_task, run, a, str(seed_num))
    rescue_num, n_rescued = _number(engine, run, growth, p.grow_threshold,
                                    max(p.min_seed, 2), n_seeds, "rescue_numbering.npz")
    frags = engine.run("fragments", items, _fragments_task, run, a, str(rescue_num))
    n = n_seeds + n_rescued + 1
    sizes = np.zeros(n, np.int64)
    first = np.full(n, np.iinfo(np.int64).max, np.int64)
    for _, r in frags:
        np.add.at(sizes, r["ids"], r["sizes"])
        np.minimum.at(first, r["ids"], r["first"])
    edges = stitch.join_edges(frags.gather("pairs"), frags.gather("sums"),
                              frags.gather("counts"))
    lut = stitch.final_ids(sizes, first, *edges, p.merge_threshold, p.prior_faces,
                           p.min_size)
    lut_path = run.work("segment_of_fragment.npy")
    np.save(lut_path, lut)
    joined = join_gaps(engine, run, lut, lut_path, sizes, first)
    if joined is not lut:
        lut = joined
        lut_path = run.work("segment_of_fragment_joined.npy")
        np.save(lut_path, lut)
    io.create_zarr(run.path("segmentation.zarr"), run.shape, "uint64",
                   attributes=run.attributes, delete_existing=False)
    tiles = Grid(run.shape, aligned(run.block, io.CHUNK))
    engine.run("relabel", range(len(tiles)), _relabel_task, run, str(lut_path))
    seg_sizes = np.bincount(lut.astype(np.int64), weights=sizes, minlength=int(lut.max()) + 1)
    return {int(s): int(seg_sizes[s]) for s in np.flatnonzero(seg_sizes[1:]) + 1}
