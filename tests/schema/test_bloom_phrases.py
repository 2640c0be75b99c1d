"""Each search phrase and each suggestion query, run on the real database and compared with an
independent reading of the raw data (pandas/networkx)."""

from __future__ import annotations

import itertools
from typing import Any

import neo4j
import networkx as nx
import pandas as pd
import pytest

from connectome_query.ingest.loader import load
from connectome_query.ingest.readers.celegans import cect_data_dir
from connectome_query.ingest.sources import read_source
from connectome_query.schema.bloom import (
    CHANDELIER_AIS_SHARE,
    MAX_PATH_HOPS,
    MIN_MULTI_SYNAPTIC,
    search_phrases,
)
from tests.support import celegans as celegans_raw
from tests.support.bloom import SYN_DATASET, Synthetic
from tests.support.graph import current_key

pytestmark = pytest.mark.neo4j


def phrase(dataset: str, text: str) -> dict[str, Any]:
    found = [t for t in search_phrases(dataset) if t["text"] == text]
    assert len(found) == 1, text
    return found[0]


def run(driver: neo4j.Driver, template: dict[str, Any], **values: Any) -> list[neo4j.Record]:
    """Run a phrase as Bloom does, the typed values bound to its `$params`."""
    names = {p["name"].lstrip("$") for p in template["params"]}
    assert names == set(values), (names, values)
    records, _, _ = driver.execute_query(template["cypher"], values,
                                         routing_=neo4j.RoutingControl.READ)
    return records


def suggestions(driver: neo4j.Driver, template: dict[str, Any], param: str) -> list[Any]:
    (p,) = [p for p in template["params"] if p["name"] == f"${param}"]
    records, _, _ = driver.execute_query(p["cypher"], routing_=neo4j.RoutingControl.READ)
    assert all(len(r) == 1 for r in records)
    return [r[0] for r in records]


def graph_items(records: list[neo4j.Record]) -> tuple[dict[str, neo4j.graph.Node],
                                                        list[neo4j.graph.Relationship]]:
    """All nodes and relationships a Bloom scene would show for these records."""
    nodes: dict[str, neo4j.graph.Node] = {}
    rels: dict[str, neo4j.graph.Relationship] = {}

    def visit(value: Any) -> None:
        if isinstance(value, neo4j.graph.Node):
            nodes[value.element_id] = value
        elif isinstance(value, neo4j.graph.Relationship):
            rels[value.element_id] = value
        elif isinstance(value, neo4j.graph.Path):
            for n in value.nodes:
                visit(n)
            for r in value.relationships:
                visit(r)
        elif isinstance(value, list):
            for v in value:
                visit(v)

    for record in records:
        for value in record.values():
            visit(value)
    return nodes, list(rels.values())


def ends(rel: neo4j.graph.Relationship) -> tuple[str, str]:
    """Element ids of a relationship's start and end nodes."""
    assert rel.start_node is not None and rel.end_node is not None
    return rel.start_node.element_id, rel.end_node.element_id


# -- C. elegans (cook2019; varshney2011 shares cell names, so scoping is checked too) --------------
@pytest.fixture(scope="module")
def cook(celegans: dict[str, object]) -> dict[str, Any]:
    edges = celegans_raw.cook_edges()
    chem = edges[edges["Type"] == "chemical"]
    tables = read_source("cook2019")
    return {
        "chem": {(s, t): int(w) for s, t, w in zip(chem["Source"], chem["Target"],
                                                   chem["Weight"], strict=True)},
        "gap": celegans_raw.cook_gap_junctions(),
        "names": sorted(set(edges["Source"]) | set(edges["Target"])),
        "types": tables.neurons.set_index("instance")["type"].to_dict(),
        "graph": celegans_raw.cook_chemical_graph(),
    }


def test_partners_of_neuron(driver: neo4j.Driver, cook: dict[str, Any]) -> None:
    tmpl = phrase("cook2019", "partners of $neuron")
    assert suggestions(driver, tmpl, "neuron") == cook["names"]
    picks = ["AVAL", "RIML", "ADAL", *cook["names"][::23]]
    for name in picks:
        nodes, rels = graph_items(run(driver, tmpl, neuron=name))
        assert {n["dataset"] for n in nodes.values()} == {current_key(driver, "cook2019")}
        inst = {eid: n["instance"] for eid, n in nodes.items()}
        got_chem = {(inst[a], inst[b]): r["weight"]
                    for r in rels if r.type == "ConnectsTo" for a, b in [ends(r)]}
        got_gap = {frozenset((inst[a], inst[b])): r["weight"]
                   for r in rels if r.type == "GapJunction" for a, b in [ends(r)]}
        want_chem = {k: w for k, w in cook["chem"].items() if name in k}
        want_gap = {k: w for k, w in cook["gap"].items() if name in k}
        assert got_chem == want_chem, name
        assert got_gap == want_gap, name
    # A bodyId typed as text finds the same cell.
    body = next(n for n in graph_items(run(driver, tmpl, neuron="AVAL"))[0].values()
                if n["instance"] == "AVAL")["bodyId"]
    by_id = graph_items(run(driver, tmpl, neuron=str(body)))
    assert len(by_id[1]) == len([k for k in cook["chem"] if "AVAL" in k]) + len(
        [k for k in cook["gap"] if "AVAL" in k])
    assert run(driver, tmpl, neuron="NO_SUCH_CELL") == []


@pytest.mark.parametrize(("source", "kind", "raw"), [
    ("bentley2016_monoamine", "Monoamine", "list"),
    ("ripollsanchez2023_mid", "Neuropeptide", "matrix")])
def test_neuromodulator_partners_of_neuron(driver: neo4j.Driver, source: str, kind: str,
                                           raw: str) -> None:
    """Both directions of a cell's monoamine or neuropeptide edges, against cect's raw file."""
    dataset = f"t_bloom_{kind.lower()}"
    load(driver, read_source(source), dataset)
    data = cect_data_dir()
    if raw == "list":
        rows = pd.read_csv(data / "edgelist_MA.csv", header=None,
                           names=["pre", "post", "transmitter", "receptor"])
        edges = rows.groupby(["pre", "post"]).size()
    else:
        m = pd.read_csv(data / "01022024_neuropeptide_connectome_mid_range_model.csv"
                        ).set_index("Row").stack()
        edges = m[m > 0]
    want_all = {(a, b): int(w) for (a, b), w in edges.items()}
    tmpl = phrase(dataset, "neuromodulator partners of $neuron")
    hubs = pd.Series(list(want_all.values()), index=[a for a, _ in want_all]).groupby(level=0)
    for name in [hubs.sum().idxmax(), *sorted({b for _, b in want_all})[::37]]:
        nodes, rels = graph_items(run(driver, tmpl, neuron=name))
        inst = {eid: n["instance"] for eid, n in nodes.items()}
        assert {r.type for r in rels} <= {kind}
        got = {(inst[a], inst[b]): r["weight"] for r in rels for a, b in [ends(r)]}
        assert got == {k: w for k, w in want_all.items() if name in k}, name


def test_multi_synaptic_contacts(driver: neo4j.Driver, cook: dict[str, Any]) -> None:
    tmpl = phrase("cook2019", "multi-synaptic contacts with at least $n synapses")
    offered = suggestions(driver, tmpl, "n")
    assert offered == sorted({w for w in cook["chem"].values() if w >= MIN_MULTI_SYNAPTIC})
    for n in (2, 10, 40, offered[-1]):
        records = run(driver, tmpl, n=n)
        got = {(r["a"]["instance"], r["b"]["instance"]): r["c"]["weight"] for r in records}
        assert got == {k: w for k, w in cook["chem"].items() if w >= n}, n
        assert {r["a"]["dataset"] for r in records} == {current_key(driver, "cook2019")}


def test_path_from_a_to_b(driver: neo4j.Driver, cook: dict[str, Any]) -> None:
    tmpl = phrase("cook2019", "path from $a to $b")
    assert suggestions(driver, tmpl, "a") == cook["names"] == suggestions(driver, tmpl, "b")
    g: nx.DiGraph = cook["graph"]
    lengths = dict(nx.all_pairs_shortest_path_length(g, cutoff=MAX_PATH_HOPS))
    pairs = []
    for want_len in (1, 2, 3, 4):  # a few pairs at each distance, few enough paths to list
        found = 0
        for a, b in itertools.product(sorted(g)[::7], sorted(g)[3::11]):
            if a == b or lengths[a].get(b) != want_len:
                continue
            if sum(1 for _ in itertools.islice(nx.all_shortest_paths(g, a, b), 301)) <= 300:
                pairs.append((a, b))
                found += 1
            if found == 3:
                break
    assert len(pairs) >= 10
    for a, b in pairs:
        records = run(driver, tmpl, a=a, b=b)
        got = {tuple(n["instance"] for n in r["p"].nodes) for r in records}
        assert got == {tuple(p) for p in nx.all_shortest_paths(g, a, b)}, (a, b)
    # Unreachable within the hop limit (or at all): nothing, as networkx says.
    sinks = [v for v in sorted(g) if g.out_degree(v) == 0 and v != "AVAL"]
    if sinks:
        assert run(driver, tmpl, a=sinks[0], b="AVAL") == []
    assert run(driver, tmpl, a="AVAL", b="AVAL") == []


def test_neurons_of_type(driver: neo4j.Driver, cook: dict[str, Any]) -> None:
    tmpl = phrase("cook2019", "neurons of type $type")
    types: dict[str, str] = cook["types"]
    assert suggestions(driver, tmpl, "type") == sorted({t for t in types.values() if t})
    for t in ("AVA", "VA", "RMD", "dBWML", sorted(set(types.values()))[5]):
        members = {name for name, ty in types.items() if ty == t}
        nodes, rels = graph_items(run(driver, tmpl, type=t))
        assert {n["instance"] for n in nodes.values()} == members, t
        inst = {eid: n["instance"] for eid, n in nodes.items()}
        got = {(inst[a], inst[b]): r["weight"] for r in rels for a, b in [ends(r)]}
        assert got == {k: w for k, w in cook["chem"].items() if set(k) <= members}, t
    assert run(driver, tmpl, type="NOT_A_TYPE") == []


# -- chandelier cells: synthetic synapse table with compartments --------------------------------
def expected_chandeliers(raw: Synthetic, flagged: set[int] | None) -> set[int]:
    syn = raw.synapses
    if flagged is not None:
        return flagged
    known = syn[syn["post_compartment"] != "unknown"]
    ais = known.groupby("pre_pt_root_id")["post_compartment"].apply(lambda c: (c == "ais").mean())
    return {int(str(b)) for b, share in ais.items() if share >= CHANDELIER_AIS_SHARE}


def check_chandelier_phrase(driver: neo4j.Driver, raw: Synthetic,
                            flagged: set[int] | None) -> int:
    tmpl = phrase(SYN_DATASET, "chandelier cells innervating $neuron")
    syn = raw.synapses
    ais = syn[syn["post_compartment"] == "ais"]
    targets = sorted({raw.name(b) for b in ais["post_pt_root_id"]})
    assert suggestions(driver, tmpl, "neuron") == targets
    chandeliers = expected_chandeliers(raw, flagged)
    hits = 0
    for name in sorted(set(raw.neurons["instance"])):
        body = int(raw.neurons.loc[raw.neurons["instance"] == name, "bodyId"].iloc[0])
        want = ais[(ais["post_pt_root_id"] == body) & ais["pre_pt_root_id"].isin(chandeliers)]
        nodes, _ = graph_items(run(driver, tmpl, neuron=name))
        got_syn = {n["synapseId"] for n in nodes.values() if "Synapse" in n.labels}
        got_pre = {n["bodyId"] for n in nodes.values()
                   if "Neuron" in n.labels and n["bodyId"] != body}
        assert got_syn == set(want["id"]), name
        assert got_pre == set(want["pre_pt_root_id"]), name
        assert all(n["postCompartment"] == "ais" for n in nodes.values() if "Synapse" in n.labels)
        hits += len(got_syn)
    return hits


def test_chandelier_share_fallback(driver: neo4j.Driver, synthetic: Synthetic) -> None:
    """Without a `chandelier` flag on the neurons, the AIS share of outputs decides."""
    driver.execute_query("MATCH (n:Neuron {dataset: $d}) REMOVE n.chandelier",
                         d=current_key(driver, SYN_DATASET))
    assert check_chandelier_phrase(driver, synthetic, None) > 0
    # The share rule singles out some but not all of the axo-axonic-like cells.
    chc = set(synthetic.neurons.loc[synthetic.neurons["type"] == "ChC", "bodyId"])
    assert expected_chandeliers(synthetic, None) <= chc


def test_chandelier_flag_wins(driver: neo4j.Driver, synthetic: Synthetic) -> None:
    """With the flag set at ingest, it decides, even where the AIS share says otherwise."""
    by_share = expected_chandeliers(synthetic, None)
    bodies = sorted(int(b) for b in synthetic.neurons["bodyId"])
    flagged = {b for b in bodies if b in by_share} - {min(by_share)} | set(bodies[:3])
    assert flagged != by_share
    driver.execute_query("MATCH (n:Neuron {dataset: $d}) SET n.chandelier = n.bodyId IN $ids",
                         d=current_key(driver, SYN_DATASET), ids=sorted(flagged))
    try:
        assert check_chandelier_phrase(driver, synthetic, flagged) > 0
    finally:
        driver.execute_query("MATCH (n:Neuron {dataset: $d}) REMOVE n.chandelier",
                             d=current_key(driver, SYN_DATASET))


def test_multi_synaptic_on_synapse_table(driver: neo4j.Driver, synthetic: Synthetic) -> None:
    tmpl = phrase(SYN_DATASET, "multi-synaptic contacts with at least $n synapses")
    counts = synthetic.synapses.groupby(["pre_pt_root_id", "post_pt_root_id"]).size()
    assert suggestions(driver, tmpl, "n") == sorted({int(c) for c in counts if c >= 2})
    for n in (2, 3, int(counts.max())):
        got = {(r["a"]["bodyId"], r["b"]["bodyId"]): r["c"]["weight"]
               for r in run(driver, tmpl, n=n)}
        want = {(int(a), int(b)): int(c) for (a, b), c in zip(counts.index, counts, strict=True)
                if c >= n}
        assert got == want, n


def test_every_phrase_names_its_params(driver: neo4j.Driver, celegans: dict[str, object]) -> None:
    for tmpl in search_phrases("cook2019"):
        for p in tmpl["params"]:
            assert p["name"] in tmpl["text"] and p["name"] in tmpl["cypher"]
        # EXPLAIN compiles the query without running it: no syntax errors anywhere.
        driver.execute_query("EXPLAIN " + tmpl["cypher"])
        for p in tmpl["params"]:
            driver.execute_query("EXPLAIN " + p["cypher"])


def test_unknown_dataset_name_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid dataset name"):
        search_phrases("x' OR 1=1 //")

