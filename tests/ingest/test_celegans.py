"""Cook 2019 and Varshney 2011 through the real loader, checked against pandas/networkx."""

from __future__ import annotations

import neo4j
import pytest

from tests.support.celegans import (
    cook_chemical_graph,
    cook_edges,
    cook_gap_junctions,
    varshney_chemical_total,
    varshney_gap_junctions,
    varshney_rows,
)
from tests.support.graph import current_key

pytestmark = pytest.mark.neo4j


def _rows(driver: neo4j.Driver, query: str) -> list[dict]:
    """Rows of `query`, with `$cook` and `$varshney` the keys of the current versions."""
    keys = {"cook": current_key(driver, "cook2019"),
            "varshney": current_key(driver, "varshney2011")}
    records, _, _ = driver.execute_query(query, keys)
    return [r.data() for r in records]


def _one(driver: neo4j.Driver, query: str) -> dict:
    return _rows(driver, query)[0]


def test_cook_totals_match_raw_file(driver: neo4j.Driver, celegans: dict) -> None:
    raw = cook_edges()
    got = _one(driver, """
        MATCH (a:Neuron {dataset: $cook})-[c:ConnectsTo]->()
        RETURN sum(c.weight) AS chem, count(c) AS pairs""")
    chem = raw[raw["Type"] == "chemical"]
    assert got["chem"] == int(chem["Weight"].sum())
    assert got["pairs"] == len(chem)
    gap = _one(driver, """
        MATCH (a:Neuron {dataset: $cook})-[g:GapJunction]->()
        RETURN sum(g.weight) AS total, count(g) AS pairs""")
    expected = cook_gap_junctions()
    assert gap["pairs"] == len(expected)
    assert gap["total"] == sum(expected.values())
    neurons = _one(driver, "MATCH (n:Neuron {dataset: $cook}) RETURN count(n) AS n")
    assert neurons["n"] == len(set(raw["Source"]) | set(raw["Target"]))


def test_gap_junctions_are_undirected_once_per_pair(driver: neo4j.Driver, celegans: dict) -> None:
    rows = _rows(driver, """
        MATCH (a:Neuron {dataset: $cook})-[g:GapJunction]->(b)
        RETURN a.instance AS a, b.instance AS b, a.bodyId <= b.bodyId AS ordered""")
    assert all(r["ordered"] for r in rows)
    pairs = [frozenset((r["a"], r["b"])) for r in rows]
    assert len(pairs) == len(set(pairs))


def test_aval_strongest_upstream_partners(driver: neo4j.Driver, celegans: dict) -> None:
    g = cook_chemical_graph()
    expected = sorted(((d["weight"], u) for u, _, d in g.in_edges("AVAL", data=True)),
                      reverse=True)
    rows = _rows(driver, """
        MATCH (p:Neuron)-[c:ConnectsTo]->(n:Neuron {dataset: $cook, instance: 'AVAL'})
        RETURN p.instance AS name, c.weight AS weight ORDER BY weight DESC, name DESC""")
    assert [(r["weight"], r["name"]) for r in rows] == expected


def test_varshney_totals_match_raw_file(driver: neo4j.Driver, celegans: dict) -> None:
    chem = _one(driver, """
        MATCH (:Neuron {dataset: $varshney})-[c:ConnectsTo]->() RETURN sum(c.weight) AS t""")
    assert chem["t"] == varshney_chemical_total()
    gap = _one(driver, """
        MATCH (:Neuron {dataset: $varshney})-[g:GapJunction]->() RETURN sum(g.weight) AS t""")
    assert gap["t"] == sum(varshney_gap_junctions().values())
    nmj = varshney_rows()
    nmj = nmj[nmj["Type"] == "NMJ"].groupby("Neuron 1")["Nbr"].sum()
    got = _one(driver, """
        MATCH (n:Neuron {dataset: $varshney}) WHERE n.nmjSynapses > 0
        RETURN collect([n.instance, n.nmjSynapses]) AS pairs""")
    assert dict(got["pairs"]) == {k: int(v) for k, v in nmj.items()}


def test_meta_totals_and_datasets_side_by_side(driver: neo4j.Driver, celegans: dict) -> None:
    rows = _rows(driver,
                 "MATCH (m:Meta) WHERE m.dataset IN [$cook, $varshney] "
                 "RETURN m.name AS d, m.chemicalSynapses AS chem, m.gapJunctions AS gap, "
                 "m.status AS status")
    meta = {r["d"]: r for r in rows}
    raw = cook_edges()
    assert meta["cook2019"]["chem"] == int(raw[raw["Type"] == "chemical"]["Weight"].sum())
    assert meta["varshney2011"]["chem"] == varshney_chemical_total()
    assert meta["cook2019"]["gap"] == sum(cook_gap_junctions().values())
    assert {r["status"] for r in rows} == {"complete"}
    # AVAL exists in both datasets as two separate nodes.
    both = _one(driver, "MATCH (n:Neuron {instance: 'AVAL'}) WHERE n.dataset IN [$cook, $varshney] "
                        "RETURN count(n) AS n")
    assert both["n"] == 2


def test_cell_class_and_neurotransmitter_stored(driver: neo4j.Driver, celegans: dict) -> None:
    import pandas as pd

    from tests.support.celegans import data_dir

    nt = pd.read_csv(data_dir() / "Modified celegans db dump.csv")
    ach = set(nt[(nt["Relationship"] == "Neurotransmitter")
                 & (nt["Entity2"] == "Acetylcholine")]["Entity1"])
    got = _one(driver, """
        MATCH (n:Neuron {dataset: $cook, instance: 'AVAL'})
        RETURN n.cellClass AS cls, n.neurotransmitter AS nt, n.type AS type""")
    assert ("AVAL" in ach) == ("Acetylcholine" in (got["nt"] or ""))
    assert got["type"] == "AVA"
    assert got["cls"]
