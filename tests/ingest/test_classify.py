"""The chandelier rule as a pure function, checked against a direct numpy computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from connectome_query.ingest.classify import (
    ChandelierRule,
    classify_chandeliers,
    with_chandelier_classification,
)
from connectome_query.ingest.tables import ConnectomeTables


def _tables(rows: list[tuple[int, int, str]], neurons: list[int]) -> ConnectomeTables:
    syn = pd.DataFrame(rows, columns=["bodyIdPre", "bodyIdPost", "postCompartment"])
    syn["synapseId"] = np.arange(len(syn))
    conns = syn.groupby(["bodyIdPre", "bodyIdPost"]).size().rename("weight").reset_index()
    conns["kind"] = "chemical"
    return ConnectomeTables("test", pd.DataFrame({"bodyId": neurons}), conns, syn)


def test_rule_counts_known_compartments_only() -> None:
    rows = ([(1, 9, "ais")] * 6 + [(1, 9, "dendrite")] * 4 + [(1, 9, "unknown")] * 50
            + [(2, 9, "ais")] * 4 + [(2, 9, "soma")] * 6
            + [(3, 9, "ais")] * 9)
    out = classify_chandeliers(_tables(rows, [1, 2, 3, 9]), ChandelierRule(0.5, 10))
    by = out.set_index("bodyId")
    assert by.loc[1, "aisOutputFraction"] == pytest.approx(0.6) and by.loc[1, "chandelier"]
    assert by.loc[2, "aisOutputFraction"] == pytest.approx(0.4) and not by.loc[2, "chandelier"]
    assert by.loc[3, "aisOutputFraction"] == 1.0 and not by.loc[3, "chandelier"]  # 9 < 10
    assert np.isnan(by.loc[9, "aisOutputFraction"]) and not by.loc[9, "chandelier"]
    lower = classify_chandeliers(_tables(rows, [1, 2, 3, 9]), ChandelierRule(0.4, 9))
    assert set(lower.loc[lower["chandelier"], "bodyId"]) == {1, 2, 3}


def test_random_tables_against_direct_computation() -> None:
    rng = np.random.default_rng(3)
    comps = np.array(["ais", "soma", "dendrite", "axon", "unknown"])
    rows = [(int(a), int(b), str(c)) for a, b, c in zip(
        rng.integers(0, 30, 3000), rng.integers(0, 30, 3000),
        comps[rng.choice(5, 3000, p=[0.3, 0.2, 0.3, 0.1, 0.1])], strict=True)]
    rule = ChandelierRule(0.32, 12)
    out = classify_chandeliers(_tables(rows, list(range(30))), rule).set_index("bodyId")
    for body in range(30):
        mine = [c for a, _, c in rows if a == body and c != "unknown"]
        ais = sum(c == "ais" for c in mine)
        assert out.loc[body, "aisOutputSynapses"] == ais
        assert out.loc[body, "chandelier"] == (len(mine) >= 12 and ais / len(mine) >= 0.32)


def test_no_synapses_means_not_classified() -> None:
    tables = ConnectomeTables("t", pd.DataFrame({"bodyId": [1, 2]}), pd.DataFrame(
        {"bodyIdPre": [1], "bodyIdPost": [2], "weight": [3], "kind": ["chemical"]}))
    out = with_chandelier_classification(tables)
    assert out.meta["chandelierClassified"] is False and out.meta["chandelierCount"] == 0
    assert not out.neurons["chandelier"].any()
    assert "chandelier" not in tables.neurons.columns  # the input is left alone


@pytest.mark.parametrize(("threshold", "minimum"), [(0.0, 10), (1.5, 10), (0.5, 0)])
def test_bad_rule(threshold: float, minimum: int) -> None:
    with pytest.raises(ValueError, match="chandelier"):
        ChandelierRule(threshold, minimum)
