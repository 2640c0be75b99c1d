"""Skeletons (SWC files, one per body) into the current version of a dataset.

Each file `<bodyId>.swc` (a run directory's `skeletons/`, or any folder of them) becomes one
`Skeleton` node holding the SWC columns as parallel lists, linked from its neuron. Every file
is read and checked before anything is written; a body the version does not hold is an error
naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import neo4j
import numpy as np

from connectome_query.graphdb import catalog
from connectome_query.ingest.errors import IngestError
from connectome_query.schema.model import HAS_SKELETON, NEURON, SKELETON, scope_label

WRITE = f"""
UNWIND $rows AS r
MATCH (n:{NEURON} {{dataset: $key, bodyId: r.bodyId}})
OPTIONAL MATCH (n)-[:{HAS_SKELETON}]->(old:{SKELETON})
DETACH DELETE old
WITH n, r
CREATE (n)-[:{HAS_SKELETON}]->(k:{SKELETON}:$($scoped) {{dataset: $key, bodyId: r.bodyId}})
SET k.nodeIds = r.nodeIds, k.kinds = r.kinds, k.x = r.x, k.y = r.y, k.z = r.z,
    k.radius = r.radius, k.parents = r.parents
"""


@dataclass(frozen=True)
class Skeleton:
    """One SWC file's columns."""

    body_id: int
    table: np.ndarray
    """Rows of `id type x y z radius parent`."""

    def row(self) -> dict[str, Any]:
        t = self.table
        return {"bodyId": self.body_id, "nodeIds": t[:, 0].astype(np.int64).tolist(),
                "kinds": t[:, 1].astype(np.int64).tolist(), "x": t[:, 2].tolist(),
                "y": t[:, 3].tolist(), "z": t[:, 4].tolist(), "radius": t[:, 5].tolist(),
                "parents": t[:, 6].astype(np.int64).tolist()}


def read_swc(path: Path) -> Skeleton:
    """One SWC file; IngestError naming the file and line when it is not SWC."""
    if not path.stem.isdigit():
        raise IngestError(path, "name the file by its body id (<bodyId>.swc)")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        parts = text.split()
        if len(parts) != 7:
            raise IngestError(path, f"SWC has 7 columns, found {len(parts)}", row=number)
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise IngestError(path, f"not a number in {text!r}", row=number) from None
        if not all(np.isfinite(values)):
            raise IngestError(path, "values must be finite", row=number)
        rows.append(values)
    if not rows:
        raise IngestError(path, "no skeleton nodes")
    table = np.asarray(rows, dtype=np.float64)
    ids = table[:, 0]
    if len(set(ids.tolist())) != len(ids):
        raise IngestError(path, "node ids repeat")
    parents = table[:, 6]
    known = set(ids.tolist())
    bad = [p for p in parents.tolist() if p != -1 and p not in known]
    if bad:
        raise IngestError(path, f"parent {bad[0]:g} is not a node of the skeleton")
    return Skeleton(int(path.stem), table)


def load_skeletons(driver: neo4j.Driver, dataset: str, folder: Path,
                   database: str = "neo4j", version: int | None = None) -> int:
    """Read every `*.swc` in `folder`, then store them on `dataset` (current version, or
    `version`); the number stored."""
    files = sorted(Path(folder).glob("*.swc"))
    if not files:
        raise IngestError(folder, "no .swc files")
    skeletons = [read_swc(f) for f in files]
    target = catalog.resolve(driver, dataset, version, database)
    records, _, _ = driver.execute_query(
        f"MATCH (n:{NEURON} {{dataset: $key}}) WHERE n.bodyId IN $ids RETURN n.bodyId AS b",
        key=target.key, ids=[s.body_id for s in skeletons], database_=database)
    present = {r["b"] for r in records}
    for skeleton, path in zip(skeletons, files, strict=True):
        if skeleton.body_id not in present:
            raise IngestError(path, f"{target.key} has no neuron {skeleton.body_id}")
    scoped = scope_label(target.key, SKELETON)
    with driver.session(database=database) as session:
        for start in range(0, len(skeletons), 200):
            rows = [s.row() for s in skeletons[start:start + 200]]
            session.execute_write(lambda tx, part: tx.run(WRITE, rows=part, key=target.key,
                                                          scoped=scoped).consume(), rows)
    return len(skeletons)
