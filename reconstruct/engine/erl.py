"""ERL and NERL from blocks' shares: no process holds the skeleton table or a label per node.

`metrics.erl` needs, for every skeleton edge, the labels at both ends and its length, and for
every label the skeletons it touches (a label touching two is a merger). A scoring task holds
its block's nodes (`truth_nodes.load`) and the labels under them, and returns (`block_share`):

- the (label, cell) pairs of its nodes, for each kind of label (mergers, cells, merged cells);
- its edges with both ends inside, summed into runs: (cell, label at child, label at parent)
  -> length, and each cell's cable;
- the child half of each edge whose parent is elsewhere: parent id, cell, place, labels.

The parents asked for are answered by the blocks holding them (`answers`), and the driver joins
the halves (one row per edge crossing a block face) and adds everything up (`Totals.add`,
`Totals.result`). Labels may be block-provisional (`stitch.provisional`): they are mapped to
whole-volume ids only when added, so two pieces of a cell that meet outside a block count as one.
The added runs go to `metrics.erl_cells`, the one definition of ERL that `metrics.erl` and the
run report use too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from connectome_query.reconstruct import metrics
from connectome_query.reconstruct.engine.runner import Record

KINDS = ("seg", "gt", "piece", "base")
"""The labels scored: the segmentation, the true cells, the true cells' pieces connected in the
volume (provisional per block) and the baseline's components (provisional per block)."""
Lookup = Callable[[np.ndarray], np.ndarray]


def _sum_by(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique rows of `keys` (n, k) and the sums of `values` over each."""
    if len(keys) == 0:
        return keys.reshape(0, keys.shape[1]), np.zeros(0)
    uk, inv = np.unique(keys, axis=0, return_inverse=True)
    return uk, np.bincount(inv.reshape(-1), weights=values, minlength=len(uk))


def _find(node: np.ndarray, row: np.ndarray, wanted: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray]:
    """(which of `wanted` ids are among `node`, the position of each found one; of repeated
    ids, the one of the last row, as `scoring.skeleton_arrays` finds parents)."""
    if len(node) == 0:
        return np.zeros(len(wanted), bool), np.zeros(0, np.int64)
    order = np.lexsort((row, node))
    ids = node[order]
    j = np.searchsorted(ids, wanted, side="right") - 1
    has = (j >= 0) & (ids[np.maximum(j, 0)] == wanted)
    return has, order[j[has]]


def _inner_edges(nodes: Record) -> tuple[np.ndarray, np.ndarray]:
    """(child, parent) positions of the edges whose parent is in the block too."""
    has, parent = _find(nodes["node"], nodes["row"], nodes["parent"])
    return np.flatnonzero(has), parent


def block_share(nodes: Record, labels: dict[str, np.ndarray]) -> Record:
    """A block's share of ERL (see the module's docstring); `labels[kind]`: the label under
    each of `nodes`."""
    child, parent = _inner_edges(nodes)
    cell, at = nodes["cell"], nodes["at"]
    length = np.linalg.norm(at[child] - at[parent], axis=1)
    cables, cable = _sum_by(cell[child].reshape(-1, 1), length)
    out: Record = {"cable_cell": cables.reshape(-1), "cable_nm": cable}
    away = np.ones(len(cell), bool)
    away[child] = False
    out.update({"away_parent": nodes["parent"][away], "away_cell": cell[away],
                "away_at": at[away], "node": nodes["node"], "row": nodes["row"], "at": at})
    for k in KINDS:
        lab = np.asarray(labels[k], np.uint64)
        out[f"pairs_{k}"] = np.unique(np.stack([lab, cell.astype(np.uint64)], axis=1), axis=0)
        la, lb = lab[child], lab[parent]
        both = (la != 0) & (lb != 0)
        keys = np.stack([cell[child][both].astype(np.uint64), la[both], lb[both]], axis=1)
        out[f"runs_{k}"], out[f"runs_nm_{k}"] = _sum_by(keys, length[both])
        out[f"away_{k}"] = lab[away]
        out[f"label_{k}"] = lab
    return out


def answers(share: Record, wanted: np.ndarray) -> Record:
    """The block's nodes whose id is in `wanted` (sorted parent ids asked for): id, row, place
    and labels, for the other half of edges crossing into the block."""
    mine = np.isin(share["node"], wanted)
    return {"node": share["node"][mine], "row": share["row"][mine], "at": share["at"][mine],
            **{k: share[f"label_{k}"][mine] for k in KINDS}}


@dataclass
class Totals:
    """The blocks' shares and the crossing edges' halves, added up."""

    pairs: dict[str, list[np.ndarray]] = field(default_factory=lambda: {k: [] for k in KINDS})
    runs: dict[str, list[np.ndarray]] = field(default_factory=lambda: {k: [] for k in KINDS})
    runs_nm: dict[str, list[np.ndarray]] = field(default_factory=lambda: {k: [] for k in KINDS})
    cable: list[pd.Series] = field(default_factory=list)
    away: list[Record] = field(default_factory=list)

    def add(self, share: Record) -> None:
        """A scoring task's share (the block's nodes themselves are left behind)."""
        for k in KINDS:
            self.pairs[k].append(share[f"pairs_{k}"])
            self.runs[k].append(share[f"runs_{k}"])
            self.runs_nm[k].append(share[f"runs_nm_{k}"])
        self.cable.append(pd.Series(share["cable_nm"], index=share["cable_cell"]))
        self.away.append({key: v for key, v in share.items() if key.startswith("away_")})

    def parents(self) -> np.ndarray:
        """The parent ids the edges leaving their blocks ask for, sorted, each once."""
        return np.unique(np.concatenate([np.zeros(0, np.int64),
                                         *(a["away_parent"] for a in self.away)]))

    def join(self, answered: list[Record]) -> None:
        """Complete the edges crossing block faces with their parents' halves (`answers`);
        a parent id no block holds leaves no edge, as in `scoring.skeleton_arrays`."""
        got = {key: np.concatenate([a[key] for a in answered]) if answered else
               np.zeros((0, 3) if key == "at" else 0) for key in ("node", "row", "at", *KINDS)}
        half = {key: np.concatenate([a[key] for a in self.away]) for key in self.away[0]} \
            if self.away else {}
        self.away = []
        if not half:
            return
        has, par = _find(got["node"], got["row"], half["away_parent"])
        cell = half["away_cell"][has]
        length = np.linalg.norm(half["away_at"][has] - got["at"][par], axis=1)
        cables, cable = _sum_by(cell.reshape(-1, 1), length)
        self.cable.append(pd.Series(cable, index=cables.reshape(-1)))
        for k in KINDS:
            la = half[f"away_{k}"][has].astype(np.uint64)
            lb = got[k][par].astype(np.uint64)
            both = (la != 0) & (lb != 0)
            keys = np.stack([cell[both].astype(np.uint64), la[both], lb[both]], axis=1)
            runs, nm = _sum_by(keys, length[both])
            self.runs[k].append(runs)
            self.runs_nm[k].append(nm)

    def cells(self, kind: str, lookup: Lookup | None = None) -> pd.DataFrame:
        """`metrics.erl_cells` of the whole skeleton table under the labels of `kind` (mapped
        by `lookup` to whole-volume ids)."""
        def ids(a: np.ndarray) -> np.ndarray:
            return np.asarray(lookup(a) if lookup is not None else a, np.uint64)

        pairs = np.concatenate([np.zeros((0, 2), np.uint64), *self.pairs[kind]])
        runs = np.concatenate([np.zeros((0, 3), np.uint64), *self.runs[kind]])
        cable = pd.concat(self.cable) if self.cable else pd.Series(dtype=float)
        return metrics.erl_cells(np.stack([ids(pairs[:, 0]), pairs[:, 1]], axis=1),
                                 np.stack([runs[:, 0], ids(runs[:, 1]), ids(runs[:, 2])],
                                          axis=1),
                                 np.concatenate([np.zeros(0), *self.runs_nm[kind]]), cable)

    def erl(self, kind: str, lookup: Lookup | None = None) -> float:
        """`metrics.erl` of the whole skeleton table under the labels of `kind`."""
        return metrics.erl_of_cells(self.cells(kind, lookup))
