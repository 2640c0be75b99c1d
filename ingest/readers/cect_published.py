"""Every published C. elegans connectome of synapse counts that the `cect` wheel ships, as
built-in sources beside `cook2019` and `varshney2011` (`celegans`).

Two shapes of file: edge lists with columns `pre`, `post`, `type` (chemical / electrical),
`synapses` (Witvliet et al. 2021 spreadsheets, White et al. 1986 tab-separated files), and
cect's own JSON tables of a dataset (cell names and one adjacency matrix per synapse class),
used for Cook et al. 2019's corrected adjacency matrices (read by cect from a spreadsheet of
matrices). Cells keep the names the file gives them; classes and neurotransmitters come from
cect's cell tables as for the other built-ins. Gap junctions are stored once per unordered pair.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from connectome_query.ingest.errors import IngestError
from connectome_query.ingest.readers.celegans import (
    cect_data_dir,
    check_kinds,
    named_connectome,
)
from connectome_query.ingest.readers.files import frame_chunk
from connectome_query.ingest.tables import ConnectomeTables

SPECIES = "Caenorhabditis elegans"


@dataclass(frozen=True)
class Published:
    """A published connectome: where cect keeps it and what a user should know about it."""

    name: str
    file: str
    """Path inside cect's package folder."""
    paper: str
    description: str
    weights: str
    quirks: str = ""
    stage: str = "adult"
    sex: str = "hermaphrodite"
    shape: str = "edges"
    """`edges` (pre, post, type, synapses) or `cect-json` (cect's matrices)."""

    def meta(self) -> dict[str, Any]:
        return {"description": self.description, "species": SPECIES, "paper": self.paper,
                "weights": self.weights, "stage": self.stage, "sex": self.sex,
                **({"quirks": self.quirks} if self.quirks else {})}


_WITVLIET_WEIGHTS = ("number of presynaptic active zones between the two cells, agreed by at "
                     "least two of three annotators; gap junctions are incomplete (see paper)")
_WITVLIET_STAGES = ("L1 (0 h)", "L1 (5 h)", "L1 (8 h)", "L1 (16 h)", "L2 (23 h)", "L3 (27 h)",
                    "adult (45 h)", "adult (45 h)")
_WITVLIET_FILES = ("1 L1", "2 L1", "3 L1", "4 L1", "5 L2", "6 L3", "7 adult", "8 adult")
_WHITE_WEIGHTS = ("number of synapses (chemical) or gap junctions (electrical) seen between "
                  "the two cells in the serial sections")

PUBLISHED: dict[str, Published] = {
    **{f"witvliet2020_{i + 1}": Published(
        name=f"witvliet2020_{i + 1}", file=f"data/witvliet_2020_{_WITVLIET_FILES[i]}.xlsx",
        paper=f"Witvliet et al. 2021, Nature 596:257 (dataset {i + 1})",
        description=f"C. elegans brain (nerve ring) at {_WITVLIET_STAGES[i]}, Witvliet et al. "
                    f"2021, dataset {i + 1} of 8 (cect)",
        weights=_WITVLIET_WEIGHTS, stage=_WITVLIET_STAGES[i],
        quirks="nerve ring and ventral ganglion only; glia and muscles as named in the file "
               "(cect renames some muscles, this does not)")
       for i in range(8)},
    "white1986_whole": Published(
        name="white1986_whole", file="data/aconnectome_white_1986_whole.csv",
        paper="White et al. 1986, Phil Trans R Soc B 314:1", weights=_WHITE_WEIGHTS,
        description="C. elegans, White et al. 1986, the whole-animal composite (cect)",
        quirks="composite of the N2U (adult) and JSH (L4) series"),
    "white1986_l4": Published(
        name="white1986_l4", file="data/aconnectome_white_1986_L4.csv",
        paper="White et al. 1986, Phil Trans R Soc B 314:1", weights=_WHITE_WEIGHTS,
        stage="L4", description="C. elegans L4 (series JSH), White et al. 1986 (cect)",
        quirks="nerve ring region only"),
    "white1986_adult": Published(
        name="white1986_adult", file="data/aconnectome_white_1986_A.csv",
        paper="White et al. 1986, Phil Trans R Soc B 314:1", weights=_WHITE_WEIGHTS,
        description="C. elegans adult (series N2U), White et al. 1986 (cect)",
        quirks="head and ventral cord of one animal"),
    "cook2019_male": Published(
        name="cook2019_male", file="cache/Cook2019MaleReader.json",
        paper="Cook et al. 2019, Nature 571:63 (SI 5, corrected July 2020)",
        weights="serial-section count of synapses (chemical) or gap junctions (electrical)",
        sex="male", shape="cect-json",
        description="C. elegans male, whole animal, Cook et al. 2019 corrected adjacency "
                    "matrices (cect)",
        quirks="cect's table of the spreadsheet: cell names as cect normalises them"),
    "cook2019_herm_corrected": Published(
        name="cook2019_herm_corrected", file="cache/Cook2019HermReader.json",
        paper="Cook et al. 2019, Nature 571:63 (SI 5, corrected July 2020)",
        weights="serial-section count of synapses (chemical) or gap junctions (electrical)",
        shape="cect-json",
        description="C. elegans hermaphrodite, whole animal, Cook et al. 2019 corrected "
                    "adjacency matrices (cect)",
        quirks="cect's table of the spreadsheet; `cook2019` is the uncorrected edge list"),
}


def cect_root() -> Path:
    """The installed `cect` package folder."""
    return cect_data_dir().parent


def read_published(name: str, root: Path | None = None) -> ConnectomeTables:
    """The published connectome `name` (a key of `PUBLISHED`)."""
    entry = PUBLISHED[name]
    root = root or cect_root()
    path = root / entry.file
    frame = (read_edge_list(path) if entry.shape == "edges" else read_cect_matrices(path))
    return named_connectome(str(path), frame, root / "data", entry.meta())


def _read_sheet(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise IngestError(path, "file not found")
    try:
        if path.suffix.lower() == ".xlsx":
            return pd.read_excel(path, dtype=object)
        return pd.read_csv(path, sep=r"\s+", dtype=str, engine="python", keep_default_na=False)
    except Exception as exc:  # pandas raises many types for unreadable files
        raise IngestError(path, f"not a readable table ({exc})") from None


def read_edge_list(path: Path) -> pd.DataFrame:
    """An edge list (pre, post, type, synapses) as `pre`, `post`, `weight`, `kind`; a connection
    listed twice is an error naming its row."""
    table = frame_chunk(str(path), _read_sheet(path), first_row=2)
    table.require("pre", "post", "type", "synapses")
    frame = pd.DataFrame({
        "pre": table.texts("pre", required=True).to_pylist(),
        "post": table.texts("post", required=True).to_pylist(),
        "weight": table.integers("synapses", ids=False),
        "kind": [k.lower() for k in table.texts("type", required=True).to_pylist()],
    })
    check_kinds(table, frame["kind"], {"chemical", "electrical"}, "type")
    dup = frame.duplicated(["pre", "post", "kind"]).to_numpy()
    if dup.any():
        pos = int(np.flatnonzero(dup)[0])
        raise table.error(pos, "pre", "connection listed twice")
    return frame


CHEMICAL_CLASS = "Generic_CS"
ELECTRICAL_CLASS = "Generic_GJ"


def read_cect_matrices(path: Path) -> pd.DataFrame:
    """cect's JSON table of a dataset (`nodes`; `connections`: synapse class -> square matrix)
    as edges; classes other than Generic_CS / Generic_GJ are refused."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IngestError(path, f"not a readable JSON file ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list) or \
            not isinstance(data.get("connections"), dict):
        raise IngestError(path, "expected an object with 'nodes' (names) and 'connections'")
    nodes = data["nodes"]
    if not all(isinstance(n, str) and n.strip() for n in nodes) or len(set(nodes)) != len(nodes):
        raise IngestError(path, "'nodes' must be distinct, non-empty names", column="nodes")
    kinds = {CHEMICAL_CLASS: "chemical", ELECTRICAL_CLASS: "electrical"}
    frames = []
    for cls, matrix in data["connections"].items():
        if cls not in kinds:
            raise IngestError(path, f"synapse class {cls!r} is not {CHEMICAL_CLASS} or "
                              f"{ELECTRICAL_CLASS}", column="connections")
        frames.append(_matrix_edges(path, cls, matrix, nodes, kinds[cls]))
    return pd.concat(frames, ignore_index=True)


def _matrix_edges(path: Path, cls: str, matrix: Any, nodes: list[str],
                  kind: str) -> pd.DataFrame:
    where = f"connections.{cls}"
    try:
        values = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError):
        raise IngestError(path, "not a matrix of numbers", column=where) from None
    if values.shape != (len(nodes), len(nodes)):
        raise IngestError(path, f"matrix of shape {values.shape}, expected "
                          f"{len(nodes)} x {len(nodes)} (one row and column per node)",
                          column=where)
    bad = ~np.isfinite(values) | (values < 0) | (values != np.round(values)) | (values >= 2**53)
    if bad.any():
        i, j = (int(x[0]) for x in np.nonzero(bad))
        raise IngestError(path, f"{values[i, j]!r} from {nodes[i]} to {nodes[j]} is not a "
                          "whole number of synapses", row=i + 1, column=where)
    pre, post = np.nonzero(values)
    return pd.DataFrame({"pre": [nodes[i] for i in pre], "post": [nodes[j] for j in post],
                         "weight": values[pre, post].astype(np.int64), "kind": kind})


def published_readers() -> dict[str, Callable[[], ConnectomeTables]]:
    """Built-in name -> reader, for every entry of `PUBLISHED`."""
    return {name: (lambda n=name: read_published(n)) for name in PUBLISHED}  # type: ignore[misc]
