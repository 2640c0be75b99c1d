"""The C. elegans neuromodulator networks cect ships, as built-in sources of neuromodulator
edges (`ingest.modulatory`): monoamines and neuropeptides, directed from a releasing cell to a
cell expressing a matching receptor.

- `bentley2016_monoamine`, `bentley2016_neuropeptide`: Bentley et al. 2016 edge lists (no
  header: releasing cell, receiving cell, transmitter, receptor), one row per pathway.
- `ripollsanchez2023_{short,mid,long}`: Ripoll-Sanchez et al. 2023 neuropeptide connectomes under
  the short-, mid- and long-range diffusion models: a square matrix (rows: releasing cells,
  columns: receiving cells) of the number of peptide-receptor pathways.
- `cook2019_neuromodulators`: `cook2019`'s synapses with Bentley 2016's monoamine and
  Ripoll-Sanchez 2023's mid-range neuropeptide edges, in one dataset.

The weight of an edge is always the number of transmitter-receptor pathways from pre to post.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from connectome_query.ingest.errors import IngestError
from connectome_query.ingest.readers.cect_published import read_published
from connectome_query.ingest.readers.celegans import cect_data_dir, cell_table
from connectome_query.ingest.readers.files import frame_chunk
from connectome_query.ingest.tables import ConnectomeTables

SPECIES = "Caenorhabditis elegans"
BENTLEY = "Bentley et al. 2016, PLoS Comput Biol 12:e1005283"
RIPOLL = "Ripoll-Sanchez et al. 2023, Neuron 111:3570"
WEIGHTS = "number of transmitter-receptor pathways from the releasing to the receiving cell"

DESCRIPTIONS = {
    "bentley2016_monoamine": "C. elegans monoamine network (dopamine, serotonin, tyramine, "
                             "octopamine), Bentley et al. 2016 (cect)",
    "bentley2016_neuropeptide": "C. elegans neuropeptide network, Bentley et al. 2016 (cect)",
    "ripollsanchez2023_short": "C. elegans neuropeptide connectome, short-range model, "
                               "Ripoll-Sanchez et al. 2023 (cect)",
    "ripollsanchez2023_mid": "C. elegans neuropeptide connectome, mid-range model, "
                             "Ripoll-Sanchez et al. 2023 (cect)",
    "ripollsanchez2023_long": "C. elegans neuropeptide connectome, long-range model, "
                              "Ripoll-Sanchez et al. 2023 (cect)",
    "cook2019_neuromodulators": "Cook et al. 2019 synapses with Bentley 2016 monoamine and "
                                "Ripoll-Sanchez 2023 mid-range neuropeptide edges (cect)",
}


def read_pathway_list(path: Path, kind: str) -> pd.DataFrame:
    """A headerless edge list (pre, post, transmitter, receptor) as edges by name: one row per
    (pre, post), weight = its pathways, `transmitters`/`receptors` listing them."""
    try:
        raw = pd.read_csv(path, header=None, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise IngestError(path, f"not a readable CSV ({exc})") from None
    if raw.shape[1] != 4:
        raise IngestError(path, f"expected 4 fields (pre, post, transmitter, receptor), found "
                          f"{raw.shape[1]}", row=1)
    raw.columns = ["pre", "post", "transmitter", "receptor"]
    chunk = frame_chunk(str(path), raw, first_row=1)
    frame = pd.DataFrame({c: chunk.texts(c, required=True).to_pylist() for c in raw.columns})
    twice = frame.duplicated().to_numpy()
    if twice.any():
        pos = int(twice.nonzero()[0][0])
        raise chunk.error(pos, "receptor", "the same pathway is listed twice")
    grouped = frame.groupby(["pre", "post"], sort=True)
    sizes = grouped.size()
    return pd.DataFrame({
        "pre": list(sizes.index.get_level_values(0)),
        "post": list(sizes.index.get_level_values(1)), "kind": kind, "weight": sizes.to_numpy(),
        "transmitters": [list(g["transmitter"]) for _, g in grouped],
        "receptors": [list(g["receptor"]) for _, g in grouped]})


def read_pathway_matrix(path: Path, kind: str) -> pd.DataFrame:
    """A square matrix CSV (first column: releasing cell; header: receiving cells) of pathway
    counts as edges by name."""
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise IngestError(path, f"not a readable CSV ({exc})") from None
    chunk = frame_chunk(str(path), raw, first_row=2)
    first = str(raw.columns[0])
    pre = chunk.texts(first, required=True).to_pylist()
    posts = [str(c) for c in raw.columns[1:]]
    if sorted(pre) != sorted(posts):
        raise IngestError(path, "the row cells are not the column cells (expected a square "
                          "matrix)", column=first)
    rows = []
    for post in posts:
        counts = chunk.integers(post, ids=False)
        rows.append(pd.DataFrame({"pre": pre, "post": post, "weight": counts}))
    edges = pd.concat(rows, ignore_index=True)
    edges = edges[edges["weight"] > 0].sort_values(["pre", "post"]).reset_index(drop=True)
    edges["kind"] = kind
    edges["transmitters"] = None
    edges["receptors"] = None
    return edges


def _modulatory_only(name: str, edges: pd.DataFrame, data: Path, paper: str) -> ConnectomeTables:
    cells = sorted(set(edges["pre"]) | set(edges["post"]))
    neurons = cell_table(cells, data)
    ids = dict(zip(neurons["instance"], neurons["bodyId"], strict=True))
    empty = pd.DataFrame({"bodyIdPre": pd.Series(dtype="int64"),
                          "bodyIdPost": pd.Series(dtype="int64"),
                          "weight": pd.Series(dtype="int64"), "kind": pd.Series(dtype=object)})
    return ConnectomeTables(
        source=name, neurons=neurons, connections=empty, modulatory=_by_id(edges, ids),
        meta={"description": DESCRIPTIONS[name], "species": SPECIES, "paper": paper,
              "weights": WEIGHTS})


def _by_id(edges: pd.DataFrame, ids: dict[str, int]) -> pd.DataFrame:
    return pd.DataFrame({
        "bodyIdPre": edges["pre"].map(ids).astype("int64"),
        "bodyIdPost": edges["post"].map(ids).astype("int64"), "kind": edges["kind"],
        "weight": edges["weight"].astype("int64"), "transmitters": edges["transmitters"],
        "receptors": edges["receptors"]})


def _bentley(kind: str, file: str, name: str) -> Callable[[], ConnectomeTables]:
    def read() -> ConnectomeTables:
        data = cect_data_dir()
        return _modulatory_only(name, read_pathway_list(data / file, kind), data, BENTLEY)
    return read


def _ripoll(model: str) -> Callable[[], ConnectomeTables]:
    def read() -> ConnectomeTables:
        data = cect_data_dir()
        path = data / f"01022024_neuropeptide_connectome_{model}_range_model.csv"
        return _modulatory_only(f"ripollsanchez2023_{model}",
                                read_pathway_matrix(path, "neuropeptide"), data, RIPOLL)
    return read


def read_cook2019_neuromodulators() -> ConnectomeTables:
    """Cook 2019's synapses plus monoamine and mid-range neuropeptide edges; cells named only
    by the neuromodulator networks are added as neurons without synapses."""
    data = cect_data_dir()
    base = read_published("cook2019", data.parent)
    edges = pd.concat([
        read_pathway_list(data / "edgelist_MA.csv", "monoamine"),
        read_pathway_matrix(data / "01022024_neuropeptide_connectome_mid_range_model.csv",
                            "neuropeptide")], ignore_index=True)
    known = set(base.neurons["instance"])
    spelled = {_unpadded(n): n for n in known}
    for end in ("pre", "post"):
        edges[end] = [n if n in known else spelled.get(_unpadded(n), n) for n in edges[end]]
    edges = _merge_respelled(edges)
    extra = sorted((set(edges["pre"]) | set(edges["post"])) - known)
    neurons = pd.concat([base.neurons, cell_table(extra, data)], ignore_index=True) \
        if extra else base.neurons
    ids = dict(zip(neurons["instance"], neurons["bodyId"], strict=True))
    if len(set(ids.values())) != len(ids):
        raise IngestError(data, "two cell names hash to the same bodyId")
    return ConnectomeTables(
        source="cook2019_neuromodulators", neurons=neurons, connections=base.connections,
        modulatory=_by_id(edges, ids),
        meta={**base.meta, "description": DESCRIPTIONS["cook2019_neuromodulators"],
              "paper": f"Cook et al. 2019; {BENTLEY}; {RIPOLL}",
              "quirks": "the neuromodulator networks' cell names are respelled as Cook's where "
                        "they differ only by a leading zero (VC4 -> VC04)"})


def _unpadded(name: str) -> str:
    """A cell name without leading zeros in its number (VC04 -> VC4, MDL01 -> MDL1)."""
    return re.sub(r"(?<=[A-Za-z])0+(?=\d)", "", name)


def _merge_respelled(edges: pd.DataFrame) -> pd.DataFrame:
    """Rows that respelling made the same (pre, post, kind) become one (weights added)."""
    if not edges.duplicated(["pre", "post", "kind"]).any():
        return edges
    def lists(values: pd.Series) -> list[str] | None:
        parts = [x for v in values if v is not None for x in v]
        return parts or None
    grouped = edges.groupby(["pre", "post", "kind"], as_index=False, sort=True)
    return grouped.agg(weight=("weight", "sum"), transmitters=("transmitters", lists),
                       receptors=("receptors", lists))


MODULATORY_READERS: dict[str, Callable[[], ConnectomeTables]] = {
    "bentley2016_monoamine": _bentley("monoamine", "edgelist_MA.csv", "bentley2016_monoamine"),
    "bentley2016_neuropeptide": _bentley("neuropeptide", "edgelist_NP.csv",
                                         "bentley2016_neuropeptide"),
    **{f"ripollsanchez2023_{m}": _ripoll(m) for m in ("short", "mid", "long")},
    "cook2019_neuromodulators": read_cook2019_neuromodulators,
}
