"""Every published C. elegans connectome of synapses that the `cect` wheel ships, as built-in
sources beside `cook2019` and `varshney2011` (`celegans`).

Each source is data (`PUBLISHED`): its files, each an edge list (`EdgeTable`: which columns
hold pre, post, weight and type), one matrix in a spreadsheet (`MatrixSheet`) or cect's JSON
table of matrices (`CectJson`), and what a user should know (paper, weights, quirks). One reader
turns any of them into edges. Cells keep the names the file gives them (unless the source names
a respelling); classes and neurotransmitters come from cect's cell tables as for the other
built-ins. Gap junctions are stored once per unordered pair. Where the published weights are
not whole numbers (Cook 2020, Yim 2024), `weight` is the value rounded up and the chemical
connection keeps the value itself as `publishedWeight`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from connectome_query.ingest.errors import IngestError
from connectome_query.ingest.readers._columns import Chunk
from connectome_query.ingest.readers.celegans import (
    cect_data_dir,
    check_kinds,
    named_connectome,
)
from connectome_query.ingest.readers.files import frame_chunk
from connectome_query.ingest.tables import ConnectomeTables

SPECIES = "Caenorhabditis elegans"


@dataclass(frozen=True)
class EdgeTable:
    """An edge-list file (one row per connection) and which of its columns hold what."""

    file: str
    """Path inside cect's package folder (.xlsx, or a text table split by `sep`)."""
    pre: str = "pre"
    post: str = "post"
    weight: str = "synapses"
    kind: str | None = "type"
    """Column saying chemical / electrical (any case); None: every row is `fixed_kind`."""
    fixed_kind: str = "chemical"
    sep: str = r"\s+"
    kinds: tuple[tuple[str, str], ...] = ()
    """The file's own type names -> chemical / electrical ("" drops the row); empty: the file
    says chemical / electrical itself."""
    columns: tuple[str, ...] = ()
    """Names of the fields of a file without a header (lines split on blanks, `#` starts a
    comment)."""
    where: tuple[str, str] | None = None
    """Keep only rows whose column holds this value (one series of a file of several)."""


@dataclass(frozen=True)
class MatrixSheet:
    """One square adjacency matrix in a spreadsheet: post cells along the first row, pre cells
    down the first column, `skip` more rows and columns (numbering) before the values."""

    file: str
    sheet: str
    kind: str = "chemical"
    skip: int = 1


@dataclass(frozen=True)
class CectJson:
    """cect's JSON table of a dataset: `nodes` and one matrix per synapse class."""

    file: str


Table = EdgeTable | MatrixSheet | CectJson


@dataclass(frozen=True)
class Published:
    """A published connectome: the files cect keeps it in and what a user should know about
    it."""

    name: str
    tables: tuple[Table, ...]
    paper: str
    description: str
    weights: str
    quirks: str = ""
    stage: str = "adult"
    sex: str = "hermaphrodite"
    whole: bool = True
    """Weights are whole numbers; else `weight` is the published value rounded up and
    `publishedWeight` the value itself (chemical connections)."""
    repeats: str = "error"
    """A (pre, post, type) listed twice: "error", or "sum" (the paper lists synapses apart)."""
    respell: Callable[[str], str] | None = None
    """Cell names as the file writes them, made one spelling."""

    @property
    def file(self) -> str:
        return self.tables[0].file

    def meta(self) -> dict[str, Any]:
        return {"description": self.description, "species": SPECIES, "paper": self.paper,
                "weights": self.weights, "stage": self.stage, "sex": self.sex,
                **({"quirks": self.quirks} if self.quirks else {})}


def pharynx_name(name: str) -> str:
    """Cook et al. 2020 write pharyngeal cells both ways (pm3VL, pm3vl; mc2DL, mc2dl): the side
    letters after the number in capitals, as the paper's figures do."""
    match = re.match(r"^(pm|mc|e|g)(\d+)([a-zA-Z]*)$", name)
    return f"{match[1]}{match[2]}{match[3].upper()}" if match else name


_WITVLIET_WEIGHTS = ("number of presynaptic active zones between the two cells, agreed by at "
                     "least two of three annotators; gap junctions are incomplete (see paper)")
_WITVLIET_STAGES = ("L1 (0 h)", "L1 (5 h)", "L1 (8 h)", "L1 (16 h)", "L2 (23 h)", "L3 (27 h)",
                    "adult (45 h)", "adult (45 h)")
_WITVLIET_FILES = ("1 L1", "2 L1", "3 L1", "4 L1", "5 L2", "6 L3", "7 adult", "8 adult")
_WHITE = "White et al. 1986, Phil Trans R Soc B 314:1"
_WHITE_WEIGHTS = ("number of synapses (chemical) or gap junctions (electrical) seen between "
                  "the two cells in the serial sections")
_DURBIN_KINDS = (("Send", "chemical"), ("Send_joint", "chemical"), ("Gap_junction", "electrical"),
                 ("Receive", ""), ("Receive_joint", ""))
_COOK = "Cook et al. 2019, Nature 571:63 (SI 5, corrected July 2020)"
_COOK_WEIGHTS = "serial-section count of synapses (chemical) or gap junctions (electrical)"


def _entry(name: str, table: Table, **about: Any) -> tuple[str, Published]:
    return name, Published(name=name, tables=(table,), **about)


PUBLISHED: dict[str, Published] = dict([
    _entry("cook2019", EdgeTable("data/herm_full_edgelist.csv", "Source", "Target", "Weight",
                                 "Type", sep=","),
           paper="Cook et al. 2019, Nature 571:63", weights=_COOK_WEIGHTS,
           description="C. elegans hermaphrodite, whole animal, Cook et al. 2019 edge list "
                       "(cect)",
           quirks="the uncorrected edge list; `cook2019_herm_corrected` has the July 2020 "
                  "corrections"),
    *(_entry(f"witvliet2020_{i + 1}", EdgeTable(f"data/witvliet_2020_{_WITVLIET_FILES[i]}.xlsx"),
             paper=f"Witvliet et al. 2021, Nature 596:257 (dataset {i + 1})",
             description=f"C. elegans brain (nerve ring) at {_WITVLIET_STAGES[i]}, Witvliet et "
                         f"al. 2021, dataset {i + 1} of 8 (cect)",
             weights=_WITVLIET_WEIGHTS, stage=_WITVLIET_STAGES[i],
             quirks="nerve ring and ventral ganglion only; glia and muscles as named in the "
                    "file (cect renames some muscles, this does not)")
      for i in range(8)),
    _entry("white1986_whole", EdgeTable("data/aconnectome_white_1986_whole.csv"),
           paper=_WHITE, weights=_WHITE_WEIGHTS,
           description="C. elegans, White et al. 1986, the whole-animal composite (cect)",
           quirks="composite of the N2U (adult) and JSH (L4) series"),
    _entry("white1986_l4", EdgeTable("data/aconnectome_white_1986_L4.csv"),
           paper=_WHITE, weights=_WHITE_WEIGHTS, stage="L4",
           description="C. elegans L4 (series JSH), White et al. 1986 (cect)",
           quirks="nerve ring region only"),
    _entry("white1986_adult", EdgeTable("data/aconnectome_white_1986_A.csv"),
           paper=_WHITE, weights=_WHITE_WEIGHTS,
           description="C. elegans adult (series N2U), White et al. 1986 (cect)",
           quirks="head and ventral cord of one animal"),
    *(_entry(f"durbin1987_{series.lower()}", EdgeTable(
        "data/neurodata_updated.txt", weight="synapses", kind="type", where=("series", series),
        columns=("pre", "post", "type", "series", "synapses"), kinds=_DURBIN_KINDS),
        paper="Durbin 1987, PhD thesis (Cambridge): neurodata.txt, the series of White et al. "
              "1986", weights=_WHITE_WEIGHTS, stage=stage, repeats="sum",
        description=f"C. elegans {what} (series {series}), Durbin 1987's table of White et al. "
                    "1986 (cect)",
        quirks="chemical = Send + Send_joint rows (polyadic synapses counted for each "
               "partner; the Receive rows are the same synapses seen from the other side); "
               "`mu_bod` (body-wall muscle) and `hyp` (hypodermis) are one cell each; cect's "
               "corrected copy of the file")
      for series, stage, what in (("JSH", "L4", "L4"), ("N2U", "adult", "adult"))),
    _entry("cook2019_male", CectJson("cache/Cook2019MaleReader.json"),
           paper=_COOK, weights=_COOK_WEIGHTS, sex="male",
           description="C. elegans male, whole animal, Cook et al. 2019 corrected adjacency "
                       "matrices (cect)",
           quirks="cect's table of the spreadsheet: cell names as cect normalises them"),
    _entry("cook2019_herm_corrected", CectJson("cache/Cook2019HermReader.json"),
           paper=_COOK, weights=_COOK_WEIGHTS,
           description="C. elegans hermaphrodite, whole animal, Cook et al. 2019 corrected "
                       "adjacency matrices (cect)",
           quirks="cect's table of the spreadsheet; `cook2019` is the uncorrected edge list"),
    ("cook2020_pharynx", Published(
        name="cook2020_pharynx",
        tables=(EdgeTable("data/cne24932-sup-0004-supinfo4.csv", "Source", "Target", "Weight",
                          "Type", sep=","),
                EdgeTable("data/cne24932-sup-0005-supinfo5.csv", "Source", "Target", "Weight",
                          None, fixed_kind="electrical", sep=",")),
        paper="Cook et al. 2020, J Comp Neurol 528:2767 (supplementary tables 4 and 5)",
        description="C. elegans hermaphrodite pharynx: neurons, muscles, marginal, epithelial "
                    "and gland cells, Cook et al. 2020 (cect)",
        weights="anatomical strength: serial sections in which the connection is seen, summed "
                "over its synapses; `weight` is that rounded up to a whole number, "
                "`publishedWeight` the paper's value (halves occur)",
        whole=False, repeats="sum", respell=pharynx_name,
        quirks="rows naming the same pair twice are added (as cect does); cell names in one "
               "spelling (pm3vl -> pm3VL); table 5's muscle-to-marginal-cell gap junctions "
               "split pm1 into pm1D/pm1VL/pm1VR while table 4 writes pm1")),
    _entry("yim2024_dauer", MatrixSheet("data/41467_2024_45943_MOESM6_ESM.xlsx", "Dauer"),
           paper="Yim et al. 2024, Nat Commun 15:1546 (supplementary data 1, sheet Dauer)",
           description="C. elegans dauer brain (nerve ring), chemical synapses, Yim et al. 2024 "
                       "(cect)",
           weights="summed volume (nm³) of presynaptic active-zone material assigned to the "
                   "pair; `weight` is that rounded up to a whole nm³, `publishedWeight` the "
                   "value itself",
           stage="dauer", whole=False,
           quirks="chemical synapses only; cect's normalised variant divides every volume by "
                  "one constant (the sheet Dauer_normalized), so it is the same connectome"),
])


def cect_root() -> Path:
    """The installed `cect` package folder."""
    return cect_data_dir().parent


def read_published(name: str, root: Path | None = None) -> ConnectomeTables:
    """The published connectome `name` (a key of `PUBLISHED`)."""
    entry = PUBLISHED[name]
    root = root or cect_root()
    frames = [_read_table(root / t.file, t, entry) for t in entry.tables]
    frame = pd.concat(frames, ignore_index=True)
    if entry.respell is not None:
        frame["pre"] = frame["pre"].map(entry.respell)
        frame["post"] = frame["post"].map(entry.respell)
    if entry.repeats == "sum":
        frame = frame.groupby(["pre", "post", "kind"], as_index=False, sort=False).agg(
            weight=("weight", "sum"))
    if not entry.whole:
        frame = _rounded_up(root / entry.file, frame)
    return named_connectome(str(root / entry.file), frame, root / "data", entry.meta())


def _read_table(path: Path, table: Table, entry: Published) -> pd.DataFrame:
    if isinstance(table, CectJson):
        return read_cect_matrices(path)
    if isinstance(table, MatrixSheet):
        return read_matrix_sheet(path, table, whole=entry.whole)
    return read_edge_list(path, table, whole=entry.whole, repeats=entry.repeats)


def _rounded_up(path: Path, frame: pd.DataFrame) -> pd.DataFrame:
    """`weight` rounded up to a whole number, the value itself kept as `publishedWeight` on
    chemical connections (gap junctions are stored once per pair and must be whole)."""
    weight = frame["weight"].astype(np.float64)
    broken = (frame["kind"] == "electrical") & (weight != np.ceil(weight))
    if broken.any():
        row = frame[broken].iloc[0]
        raise IngestError(path, f"gap junction {row['pre']} - {row['post']} has a weight of "
                          f"{row['weight']!r}, not a whole number")
    out = frame.assign(weight=np.ceil(weight).astype(np.int64))
    out["publishedWeight"] = weight.where(frame["kind"] == "chemical")
    return out


def _read_sheet(path: Path, sep: str) -> pd.DataFrame:
    if not path.exists():
        raise IngestError(path, "file not found")
    try:
        if path.suffix.lower() == ".xlsx":
            return pd.read_excel(path, dtype=object)
        return pd.read_csv(path, sep=sep, dtype=str, engine="python", keep_default_na=False)
    except Exception as exc:  # pandas raises many types for unreadable files
        raise IngestError(path, f"not a readable table ({exc})") from None


def read_edge_list(path: Path, spec: EdgeTable | None = None, *, whole: bool = True,
                   repeats: str = "error") -> pd.DataFrame:
    """An edge list as `pre`, `post`, `weight`, `kind` (chemical / electrical); a connection
    listed twice is an error naming its row unless `repeats` is "sum"."""
    spec = spec or EdgeTable(path.name)
    if not spec.columns:
        return _edge_frame(frame_chunk(str(path), _read_sheet(path, spec.sep), first_row=2),
                           spec, whole, repeats)
    sheet, lines = _read_lines(path, spec.columns)
    try:
        return _edge_frame(frame_chunk(str(path), sheet, first_row=2), spec, whole, repeats)
    except IngestError as exc:  # rows counted in the frame: name the file's line instead
        row = lines[exc.row - 2] if exc.row is not None else None
        raise IngestError(exc.path, exc.message, row=row, column=exc.column) from None


def _edge_frame(table: Chunk, spec: EdgeTable, whole: bool, repeats: str) -> pd.DataFrame:
    table.require(spec.pre, spec.post, spec.weight, *([spec.kind] if spec.kind else []),
                  *([spec.where[0]] if spec.where else []))
    if whole:
        weight: np.ndarray = table.integers(spec.weight, ids=False)
    else:
        weight = table.numbers(spec.weight, required=True)
        bad = weight <= 0
        if bad.any():
            raise table.error(int(np.flatnonzero(bad)[0]), spec.weight, "weight must be > 0")
    kinds = ([k.lower() for k in table.texts(spec.kind, required=True).to_pylist()]
             if spec.kind else [spec.fixed_kind] * table.n)
    frame = pd.DataFrame({
        "pre": [n.strip() for n in table.texts(spec.pre, required=True).to_pylist()],
        "post": [n.strip() for n in table.texts(spec.post, required=True).to_pylist()],
        "weight": weight, "kind": kinds})
    if spec.kind:
        named = dict((k.lower(), v) for k, v in spec.kinds) or {
            "chemical": "chemical", "electrical": "electrical"}
        check_kinds(table, frame["kind"], set(named), spec.kind)
        frame["kind"] = frame["kind"].map(named)
    keep = frame["kind"] != ""
    if spec.where is not None:
        keep &= np.asarray(table.texts(spec.where[0], required=True).to_pylist()) == spec.where[1]
    frame = frame[keep.to_numpy()].reset_index(drop=True)
    dup = frame.duplicated(["pre", "post", "kind"]).to_numpy()
    if repeats == "error" and dup.any():
        position = int(np.flatnonzero(keep.to_numpy())[np.flatnonzero(dup)[0]])
        raise table.error(position, spec.pre, "connection listed twice")
    return frame


def _read_lines(path: Path, columns: tuple[str, ...]) -> tuple[pd.DataFrame, list[int]]:
    """A text table without a header: each line's fields before any `#`; blank lines skipped.
    Also each row's line number."""
    if not path.exists():
        raise IngestError(path, "file not found")
    rows, lines = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) != len(columns):
            raise IngestError(path, f"{len(fields)} fields, expected {len(columns)} "
                              f"({', '.join(columns)})", row=number)
        rows.append(fields)
        lines.append(number)
    return pd.DataFrame(rows, columns=list(columns), dtype=object), lines


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
    _check_names(path, nodes, "nodes")
    kinds = {CHEMICAL_CLASS: "chemical", ELECTRICAL_CLASS: "electrical"}
    frames = []
    for cls, matrix in data["connections"].items():
        if cls not in kinds:
            raise IngestError(path, f"synapse class {cls!r} is not {CHEMICAL_CLASS} or "
                              f"{ELECTRICAL_CLASS}", column="connections")
        frames.append(_matrix_edges(path, f"connections.{cls}", matrix, nodes, nodes,
                                    kinds[cls], whole=True))
    return pd.concat(frames, ignore_index=True)


def read_matrix_sheet(path: Path, spec: MatrixSheet, *, whole: bool = True) -> pd.DataFrame:
    """One sheet holding a square matrix (pre cells down, post cells across) as edges."""
    if not path.exists():
        raise IngestError(path, "file not found")
    try:
        raw = pd.read_excel(path, sheet_name=spec.sheet, header=None, dtype=object)
    except Exception as exc:  # pandas raises many types for unreadable files
        raise IngestError(path, f"no readable sheet {spec.sheet!r} ({exc})") from None
    first = 1 + spec.skip
    posts, pres = raw.iloc[0, first:].tolist(), raw.iloc[first:, 0].tolist()
    _check_names(path, posts, f"{spec.sheet} row 1")
    _check_names(path, pres, f"{spec.sheet} column A")
    return _matrix_edges(path, spec.sheet, raw.iloc[first:, first:].to_numpy(), pres, posts,
                         spec.kind, whole=whole, first_row=first + 1)


def _check_names(path: Path, names: list[Any], where: str) -> None:
    if not all(isinstance(n, str) and n.strip() for n in names) or len(set(names)) != len(names):
        raise IngestError(path, "cell names must be distinct and non-empty", column=where)


def _matrix_edges(path: Path, where: str, matrix: Any, pres: list[str], posts: list[str],
                  kind: str, *, whole: bool, first_row: int = 1) -> pd.DataFrame:
    try:
        values = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError):
        raise IngestError(path, "not a matrix of numbers", column=where) from None
    if values.shape != (len(pres), len(posts)):
        raise IngestError(path, f"matrix of shape {values.shape}, expected "
                          f"{len(pres)} x {len(posts)} (one row and column per cell)",
                          column=where)
    bad = ~np.isfinite(values) | (values < 0) | (values >= 2**53)
    if whole:
        bad |= values != np.round(values)
    if bad.any():
        i, j = (int(x[0]) for x in np.nonzero(bad))
        what = "whole number of synapses" if whole else "finite weight >= 0"
        raise IngestError(path, f"{values[i, j]!r} from {pres[i]} to {posts[j]} is not a {what}",
                          row=i + first_row, column=where)
    pre, post = np.nonzero(values)
    weight = values[pre, post]
    return pd.DataFrame({"pre": [pres[i] for i in pre], "post": [posts[j] for j in post],
                         "weight": weight.astype(np.int64) if whole else weight, "kind": kind})


def published_readers() -> dict[str, Callable[[], ConnectomeTables]]:
    """Built-in name -> reader, for every entry of `PUBLISHED`."""
    return {name: (lambda n=name: read_published(n)) for name in PUBLISHED}  # type: ignore[misc]
