"""Scores against the truth on the engine, block by block: nothing reads a whole volume.

Each block adds its contingency table of (true cell, segment) voxel counts (VOI, ARAND, and the
segment -> cell mapping that synapse and class scores use, `metrics.*_of_table`), and looks up
the segment, the true cell, the true cell's connected piece and the baseline's component at the
truth's skeleton nodes inside it, which it alone reads (`truth_nodes`); its share of ERL and
NERL (`erl`) is summed over the blocks. The true cells' pieces connected inside the volume are
components found per block and joined across faces like the segmentation's (`segment.stitch`).
The naive baseline (affinities above 0.5, connected components, pieces under `min_size` dropped)
is labelled and scored the same way, under provisional ids, and never written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cc3d
import fastremap
import numpy as np
import pandas as pd

from connectome_query.reconstruct import io, metrics, scoring
from connectome_query.reconstruct.engine import erl, truth_nodes
from connectome_query.reconstruct.engine.context import Run, read
from connectome_query.reconstruct.engine.grid import Box
from connectome_query.reconstruct.engine.manifest import load_record
from connectome_query.reconstruct.engine.runner import Engine, Record
from connectome_query.reconstruct.engine.segmentation import read_affinities
from connectome_query.reconstruct.segment import blocks, stitch

BASELINE_THRESHOLD = 0.5
ERL_CELLS = "erl_cells.parquet"
"""Per true cell: cable, ERL under the segmentation, whether a merger touches it
(`report.errors.erl_per_cell_of`'s columns), for the run report."""


def _planes(prefix: str, vol: np.ndarray) -> Record:
    out: Record = {}
    for c in range(3):
        first = [slice(None)] * 3
        last = [slice(None)] * 3
        first[c], last[c] = slice(0, 1), slice(-1, None)
        out[f"{prefix}low{c}"] = vol[tuple(first)]
        out[f"{prefix}high{c}"] = vol[tuple(last)]
    return out


def _local_stats(local: np.ndarray) -> np.ndarray:
    ids, counts = fastremap.unique(local, return_counts=True)
    return counts[ids != 0].astype(np.int64)


def _baseline(affs: np.ndarray, box: Box) -> tuple[np.ndarray, Record]:
    """Block-local components of the strong-edge graph (cc3d), the voxels with a strong edge
    (across the faces too) only; `affs` holds the block and one more plane after it."""
    core = tuple(slice(0, n) for n in box.shape)
    strong = affs > np.float32(BASELINE_THRESHOLD)
    graph = np.zeros(box.shape, np.uint8)
    touched = np.zeros(box.shape, bool)
    for c in range(3):
        s = strong[c][core]
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        first = [slice(None)] * 3
        lo[c], hi[c], first[c] = slice(None, -1), slice(1, None), slice(0, 1)
        inner = s[tuple(hi)]
        graph[tuple(hi)] |= inner.astype(np.uint8) << np.uint8(2 * c + 1)
        graph[tuple(lo)] |= inner.astype(np.uint8) << np.uint8(2 * c)
        touched[tuple(hi)] |= inner
        touched[tuple(lo)] |= inner
        if box.lo[c] > 0:  # edges to the block before (none out of the volume)
            touched[tuple(first)] |= s[tuple(first)]
        if affs.shape[1 + c] > box.shape[c]:  # edges from the next block's first plane
            nxt = [slice(0, n) for n in box.shape]
            nxt[c] = slice(box.shape[c], box.shape[c] + 1)
            last = [slice(None)] * 3
            last[c] = slice(-1, None)
            touched[tuple(last)] |= strong[c][tuple(nxt)]
    labels = cc3d.color_connectivity_graph(graph, connectivity=6).astype(np.uint32)
    labels *= touched
    labels, _ = fastremap.renumber(labels, in_place=True)
    strong_low = {f"baff{c}": strong[c][core][tuple(slice(0, 1) if a == c else slice(None)
                                                    for a in range(3))].astype(np.float32)
                  for c in range(3)}
    return labels, strong_low


def _score_task(item: int, run: Run, nodes_folder: str, affs_path: str) -> Record:
    box = run.grid.box(item)
    gt = read(run.em_path("truth", "segmentation.zarr"), box,
              "ground truth").astype(np.uint64)
    seg = read(run.path("segmentation.zarr"), box, "segmentation")
    pieces = cc3d.connected_components(gt, connectivity=6).astype(np.uint32)
    plus = Box(box.lo, tuple(min(b + 1, s) for b, s in  # type: ignore[arg-type]
                             zip(box.hi, run.shape, strict=True)))
    base, base_aff = _baseline(read_affinities(Path(affs_path), plus), box)
    pprov, bprov = stitch.provisional(item, pieces), stitch.provisional(item, base)
    nodes = truth_nodes.load(Path(nodes_folder), item)
    at = tuple((nodes["vox"] - np.array(box.lo)).T)
    share = erl.block_share(nodes, {"seg": seg[at], "gt": gt[at], "piece": pprov[at],
                                    "base": bprov[at]})
    g, p, n = metrics.contingency(gt, seg)
    bg, bp, bn = metrics.contingency(gt, bprov)
    return {"g": g, "p": p, "n": n, "bg": bg, "bp": bp, "bn": bn, **share,
            "piece_sizes": _local_stats(pieces), "base_sizes": _local_stats(base),
            **_planes("p", pprov), **_planes("g", gt), **_planes("b", bprov), **base_aff}


def _faces_task(item: int, run: Run, folder: str, wanted_path: str) -> Record:
    """Links of the true cells' pieces and of the baseline's components across the faces
    with the blocks before, and the block's nodes that skeleton edges from other blocks
    end at (`erl.answers`)."""
    here = load_record(Path(folder) / f"{item}.npz")
    pieces = [np.zeros((0, 2), np.uint64)]
    base = [np.zeros((0, 2), np.uint64)]
    for c in range(3):
        below_n = run.grid.lower_neighbour(item, c)
        if below_n is None:
            continue
        below = load_record(Path(folder) / f"{below_n}.npz")
        same = (below[f"ghigh{c}"] == here[f"glow{c}"]).astype(np.float32)
        pieces.append(blocks.face_pairs(below[f"phigh{c}"], here[f"plow{c}"], same, 0.5))
        base.append(blocks.face_pairs(below[f"bhigh{c}"], here[f"blow{c}"],
                                      here[f"baff{c}"], 0.5))
    answered = erl.answers(here, np.load(wanted_path))
    return {"pieces": np.concatenate(pieces), "base": np.concatenate(base),
            **{f"answer_{k}": v for k, v in answered.items()}}


def _relabel_table(t: tuple[np.ndarray, np.ndarray, np.ndarray],
                   num: stitch.Numbering) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return metrics.add_tables([(t[0], num.lookup(t[1]), t[2])])


def _scores(table: tuple[np.ndarray, np.ndarray, np.ndarray], e_pred: float, e_gt: float,
            e_cc: float, n_segments: int) -> dict[str, Any]:
    split, merge = metrics.voi_of_table(*table)
    return {"voi_split": split, "voi_merge": merge, "voi": split + merge,
            "arand": metrics.adapted_rand_of_table(*table), "erl_nm": e_pred,
            "erl_truth_nm": e_gt, "erl_truth_pieces_nm": e_cc,
            "nerl": e_pred / e_cc if e_cc > 0 else 0.0,
            "nerl_truth_labels": e_pred / e_gt if e_gt > 0 else 0.0,
            "n_segments": n_segments}


def score(engine: Engine, run: Run, affs_path: Path, truth: dict[str, Any],
          syn: pd.DataFrame, segments: pd.DataFrame) -> dict[str, Any]:
    """metrics.json's content (see RUN_DIR.md), block by block; writes ERL_CELLS (ERL per
    true cell under the segmentation) into the run directory."""
    nodes_folder = run.work("truth_nodes")
    truth_nodes.split(engine, run, run.em_path("truth", "skeletons.parquet"), nodes_folder)
    recs = engine.run("score blocks", range(len(run.grid)), _score_task, run,
                      str(nodes_folder), str(affs_path))
    totals = erl.Totals()
    tables, base_tables = [], []
    piece_sizes, base_sizes = [], []
    for _, r in recs:  # each record read once (they hold the blocks' face planes)
        totals.add(r)
        tables.append((r["g"], r["p"], r["n"]))
        base_tables.append((r["bg"], r["bp"], r["bn"]))
        piece_sizes.append(r["piece_sizes"])
        base_sizes.append(r["base_sizes"])
    wanted = totals.parents()
    wanted_path = run.work("truth_parents.npy")
    wanted_path.parent.mkdir(parents=True, exist_ok=True)
    np.save(wanted_path, wanted)
    folder = str(engine.manifest.folder("score blocks"))
    faces = engine.run("score faces", recs.items, _faces_task, run, folder, str(wanted_path))
    answered, piece_links, base_links = [], [], []
    for _, r in faces:
        answered.append({k[len("answer_"):]: v for k, v in r.items() if k.startswith("answer_")})
        piece_links.append(r["pieces"])
        base_links.append(r["base"])
    totals.join(answered)
    pieces = stitch.number(piece_sizes, [np.zeros(len(s), np.int64) for s in piece_sizes],
                           np.concatenate(piece_links), 1)
    base = stitch.number(base_sizes, [np.zeros(len(s), np.int64) for s in base_sizes],
                         np.concatenate(base_links), max(run.params.min_size, 1))
    table = metrics.add_tables(tables)
    e_gt, e_cc = totals.erl("gt"), totals.erl("piece", pieces.lookup)
    cells = totals.cells("seg")
    io.write_table(run.path(ERL_CELLS), cells.drop(columns="squares_nm2").sort_values(
        "cable_nm", ascending=False, kind="stable").reset_index(drop=True))
    ours = _scores(table, metrics.erl_of_cells(cells), e_gt, e_cc, len(segments))
    baseline = _scores(_relabel_table(metrics.add_tables(base_tables), base),
                       totals.erl("base", base.lookup), e_gt, e_cc, base.count)
    mapping = metrics.segment_to_truth_of_table(*table)
    ours.update(scoring.synapse_metrics_of(mapping, syn, truth))
    ours.update(scoring.class_metrics_of(mapping, segments, truth))
    return {"pipeline": ours, "baseline_threshold_cc": baseline}
