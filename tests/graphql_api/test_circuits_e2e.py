"""End to end: synth-em (64³) → reconstruct → ingest the run dir → chandelier / multi-synaptic
queries, against the planted truth in the synth output's `truth/`.

Two datasets: the truth tables ingested as they are (the queries must return the planted pairs
exactly), and the reconstruction (imperfect: its pairs are mapped to truth cells by voxel
overlap and scored; recall and precision are printed, floors asserted).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from connectome_query.cli.main import app
from tests.support.graphql import GraphQLClient

pytestmark = [pytest.mark.neo4j, pytest.mark.slow]

CONTACTS = """query($d: String!, $after: String) { %s(dataset: $d, first: 100, after: $after%s) {
    contacts { synapseCount pre { bodyId } post { bodyId } }
    pageInfo { hasNextPage endCursor } } }"""


def _invoke(*args: str) -> None:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory, neo4j_server: object) -> Iterator[
        tuple[Path, Path]]:
    from connectome_query.reconstruct import io, pipeline

    tmp = tmp_path_factory.mktemp("e2e")
    em, run = tmp / "em", tmp / "run"
    model = tmp / "model.joblib"
    io.save_model(model, pipeline.default_model((40.0, 16.0, 16.0), seed=0))
    _invoke("synth-em", str(em), "--size", "64,64,64", "--seed", "0", "--voxel-size",
            "16,16,40", "--quiet")
    _invoke("reconstruct", str(em), str(run), "--model", str(model))
    rule = ["--chandelier-threshold", "0.5", "--chandelier-min-synapses", "1"]
    _invoke("ingest", str(em / "truth"), "-d", "t_e2e_truth", *rule)
    _invoke("ingest", str(run), "-d", "t_e2e_run", *rule)
    yield em, run


def _all(gql: GraphQLClient, field: str, dataset: str, extra: str = "") -> dict[
        tuple[int, int], int]:
    out: dict[tuple[int, int], int] = {}
    after = None
    while True:
        page = gql.data(CONTACTS % (field, extra), d=dataset, after=after)[field]
        out |= {(int(c["pre"]["bodyId"]), int(c["post"]["bodyId"])): c["synapseCount"]
                for c in page["contacts"]}
        if not page["pageInfo"]["hasNextPage"]:
            return out
        after = page["pageInfo"]["endCursor"]


def _truth(em: Path) -> dict[str, Any]:
    syn = pd.read_parquet(em / "truth" / "synapses.parquet")
    seg = pd.read_parquet(em / "truth" / "segments.parquet")
    chandeliers = set(seg.loc[seg["predicted_class"] == "chandelier", "segment_id"].astype(int))
    ais = syn[syn["pre_segment_id"].isin(chandeliers) & (syn["post_compartment"] == "ais")]
    pairs = syn.groupby(["pre_segment_id", "post_segment_id"]).size()
    return {
        "chandeliers": chandeliers,
        "ais": {(int(a), int(b)): int(n) for (a, b), n in
                ais.groupby(["pre_segment_id", "post_segment_id"]).size().items()},
        "multi": {(int(a), int(b)): int(n) for (a, b), n in pairs.items() if n >= 2},
    }


def _score(found: set[tuple[int, int]], truth: set[tuple[int, int]]
           ) -> tuple[float, float, int, int]:
    """Precision (nan when nothing was found), recall, found, true."""
    hit = len(found & truth)
    return (hit / len(found) if found else float("nan"), hit / len(truth) if truth else 1.0,
            len(found), len(truth))


def test_truth_ingest_returns_planted_pairs_exactly(dirs: tuple[Path, Path],
                                                    gql: GraphQLClient) -> None:
    em, _ = dirs
    truth = _truth(em)
    assert truth["ais"] and truth["multi"], "the synthetic volume plants both kinds of pairs"
    cells = gql.data('{ chandelierCells(dataset: "t_e2e_truth") { cells { neuron { bodyId } } } }')
    found = {int(c["neuron"]["bodyId"]) for c in cells["chandelierCells"]["cells"]}
    senders = {a for a, _ in truth["ais"]}
    assert senders <= found <= truth["chandeliers"]
    assert _all(gql, "chandelierInnervation", "t_e2e_truth") == truth["ais"]
    assert _all(gql, "multiSynapticContacts", "t_e2e_truth", ", minSynapses: 2") == truth["multi"]


def test_reconstruction_recall_and_precision(dirs: tuple[Path, Path],
                                             gql: GraphQLClient) -> None:
    from connectome_query.reconstruct import io, metrics

    em, run = dirs
    truth = _truth(em)
    gt = io.open_zarr(em / "truth" / "segmentation.zarr").read().result()
    pred = io.open_zarr(run / "segmentation.zarr").read().result()
    to_truth = metrics.segment_to_truth(gt, pred)

    # The queries on the imperfect reconstruction still agree with pandas on its own tables.
    rsyn = pd.read_parquet(run / "synapses.parquet")
    pairs = rsyn.groupby(["pre_segment_id", "post_segment_id"]).size()
    multi = _all(gql, "multiSynapticContacts", "t_e2e_run", ", minSynapses: 2")
    assert multi == {(int(a), int(b)): int(n) for (a, b), n in pairs.items() if n >= 2}
    ais = _all(gql, "chandelierInnervation", "t_e2e_run")
    known = rsyn[rsyn["post_compartment"] != "unknown"]
    frac = known.groupby("pre_segment_id")["post_compartment"].apply(lambda c: (c == "ais").mean())
    chand = set(frac[frac >= 0.5].index.astype(int))
    rais = rsyn[rsyn["pre_segment_id"].isin(chand) & (rsyn["post_compartment"] == "ais")]
    assert ais == {(int(a), int(b)): int(n) for (a, b), n in
                   rais.groupby(["pre_segment_id", "post_segment_id"]).size().items()}

    # Against the planted truth: reconstructed pairs mapped to truth cells by voxel overlap.
    def mapped(found: dict[tuple[int, int], int]) -> set[tuple[int, int]]:
        return {(to_truth.get(a, 0), to_truth.get(b, 0)) for a, b in found}

    all_pairs = {(int(a), int(b)) for a, b in pairs.index}
    truth_pairs = {tuple(int(v) for v in p) for p in pd.read_parquet(
        em / "truth" / "synapses.parquet")[["pre_segment_id", "post_segment_id"]].to_numpy()}
    figures = {
        "chandelier→AIS pairs": _score(mapped(ais), set(truth["ais"])),
        "multi-synaptic pairs (k>=2)": _score(mapped(multi), set(truth["multi"])),
        "any synaptic pair": _score(mapped(dict.fromkeys(all_pairs, 1)), truth_pairs),
    }
    for name, (p, r, n_found, n_true) in figures.items():
        print(f"e2e {name}: precision {p:.2f} recall {r:.2f} ({n_found} found, {n_true} true)")
    pipeline_metrics = io.read_json(run / "metrics.json", "metrics")["pipeline"]
    print(f"e2e pipeline synapse precision {pipeline_metrics['synapse_precision']:.2f} "
          f"recall {pipeline_metrics['synapse_recall']:.2f}")
    # Floors: a reconstructed connection must mostly join the right cells, and some connection
    # of the truth must come back; pair recall cannot beat the detector's synapse recall.
    precision, recall, _, _ = figures["any synaptic pair"]
    assert precision >= 0.5 and recall > 0.0
    precision, recall, _, _ = figures["chandelier→AIS pairs"]
    assert precision >= 0.5 and recall > 0.0
