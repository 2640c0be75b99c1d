"""The summary kept when a load finishes (`graphdb.summary`): it holds what the version's graph
gives now, goes with the version when it is deleted, and a version without one (loaded before
summaries, or with an older layout) still gets its page, computed live and said so."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import neo4j
import numpy as np
import pytest

from connectome_query.graphdb import catalog, summary
from connectome_query.graphdb.driver import open_async_driver
from connectome_query.graphdb.settings import Neo4jTarget
from connectome_query.graphql_api.web import page_data
from connectome_query.ingest.loader import load
from connectome_query.ingest.sources import read_source
from tests.support.neuprint_files import write_neuprint
from tests.support.web_data import WEB_PUBLIC, connections

pytestmark = [pytest.mark.neo4j]


def _without_time(props: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in props.items() if k not in ("computedAt", "dataset")}


def test_kept_summary_equals_the_raw_files(driver: neo4j.Driver,
                                           web_files: dict[str, Path]) -> None:
    folder = web_files[WEB_PUBLIC]
    conn = connections(folder)
    key = catalog.resolve(driver, WEB_PUBLIC).key
    kept = summary.read(driver, key)
    assert kept is not None
    tables = page_data.summary_tables(kept)
    expected = (conn.groupby(["preType", "postType"])["weight"].agg(["sum", "count"])
                .reset_index())
    got = tables["pairs"].sort_values(["preType", "postType"]).reset_index(drop=True)
    np.testing.assert_array_equal(got[["synapses", "connections"]].to_numpy(),
                                  expected[["sum", "count"]].to_numpy())
    assert got["preType"].tolist() == expected["preType"].tolist()
    assert got["postType"].tolist() == expected["postType"].tolist()
    assert kept["connections"] == len(conn) and kept["synapses"] == int(conn["weight"].sum())
    assert _without_time(kept) == _without_time(summary.compute(driver, key))


def test_heatmap_array_equals_the_pandas_pivot(driver: neo4j.Driver,
                                               web_files: dict[str, Path]) -> None:
    conn = connections(web_files[WEB_PUBLIC])
    kept = summary.read(driver, catalog.resolve(driver, WEB_PUBLIC).key)
    assert kept is not None
    tables = page_data.summary_tables(kept)
    matrix = page_data.type_matrix(tables["pairs"], totals=tables["typeTotals"])
    pivot = conn.pivot_table(index="preType", columns="postType", values="weight",
                             aggfunc="sum", fill_value=0)
    expected = pivot.reindex(index=matrix.index, columns=matrix.columns, fill_value=0)
    np.testing.assert_array_equal(matrix.to_numpy(), expected.to_numpy())


def test_pairs_kept_among_the_top_types_give_the_same_heatmap(
        driver: neo4j.Driver, web_files: dict[str, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With pairs kept among only 6 types, the 6-type heatmap is still the pandas pivot over
    the 6 types with most synapses in and out."""
    conn = connections(web_files[WEB_PUBLIC])
    monkeypatch.setattr(summary, "PAIR_TYPES", 6)
    tables = page_data.summary_tables(
        summary.compute(driver, catalog.resolve(driver, WEB_PUBLIC).key))
    assert len(set(tables["pairs"]["preType"]) | set(tables["pairs"]["postType"])) <= 6
    matrix = page_data.type_matrix(tables["pairs"], 6, tables["typeTotals"])
    totals = (conn.groupby("preType")["weight"].sum()
              .add(conn.groupby("postType")["weight"].sum(), fill_value=0))
    top = sorted(totals.sort_values(ascending=False, kind="stable").index[:6])
    assert sorted(matrix.index) == top == sorted(matrix.columns)
    pivot = conn.pivot_table(index="preType", columns="postType", values="weight",
                             aggfunc="sum", fill_value=0)
    expected = pivot.reindex(index=matrix.index, columns=matrix.columns, fill_value=0)
    np.testing.assert_array_equal(matrix.to_numpy(), expected.to_numpy())


def test_absent_summary_is_computed_live_and_said(driver: neo4j.Driver,
                                                  neo4j_target: Neo4jTarget,
                                                  tmp_path: Path) -> None:
    name = "t_summary_absent"
    write_neuprint(tmp_path, neurons=40, edges=150, gap=5, seed=77)
    load(driver, read_source(str(tmp_path)), name)
    key = catalog.resolve(driver, name).key
    kept = summary.read(driver, key)
    assert kept is not None

    def _run(read: Any) -> tuple[dict[str, Any], str]:
        # in a thread of its own: a browser test may have left an event loop in this one
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, read).result()

    async def page_summary() -> tuple[dict[str, Any], str]:
        adriver = open_async_driver(neo4j_target)
        try:
            return await page_data.version_summary(adriver, neo4j_target.database, key)
        finally:
            await adriver.close()

    props, origin = _run(page_summary())
    assert origin.startswith("totals kept at ingest")
    driver.execute_query(f"MATCH (s:{summary.LABEL} {{dataset: $k}}) SET s.format = 0", k=key)
    props, origin = _run(page_summary())
    assert "older layout" in origin and _without_time(props) == _without_time(kept)
    driver.execute_query(f"MATCH (s:{summary.LABEL} {{dataset: $k}}) DELETE s", k=key)
    props, origin = _run(page_summary())
    assert "none was kept" in origin and _without_time(props) == _without_time(kept)
    assert key in summary.keep_missing(driver)
    assert summary.read(driver, key) is not None
    load(driver, read_source(str(tmp_path)), name)  # version 2; then delete version 1
    catalog.delete_version(driver, catalog.list_versions(driver, name)[0])
    left = driver.execute_query(f"MATCH (s:{summary.LABEL} {{dataset: $k}}) RETURN count(s) AS n",
                                k=key).records[0]["n"]
    assert left == 0
