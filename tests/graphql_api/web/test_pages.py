"""Dataset and neuron pages: their numbers equal an independent pandas reading of the raw
neuPrint files (counts, the type × type matrix, synapses per connection, partners by type);
they render in Chromium with every picture drawn and nothing fetched from outside; a private
dataset is invisible without its token and shown with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.support import browser as bs
from tests.support.web_data import WEB_PRIVATE, WEB_PUBLIC, connections

pytestmark = [pytest.mark.neo4j]


def _json(url: str, token: str | None = None) -> Any:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    answer = httpx.get(url, headers=headers, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_dataset_numbers_equal_the_raw_files(live_api: str, web_files: dict[str, Path]) -> None:
    folder = web_files[WEB_PUBLIC]
    conn = connections(folder)
    neurons = pd.read_csv(folder / "neurons.csv")
    data = _json(f"{live_api}datasets/{WEB_PUBLIC}/data.json")
    assert data["counts"] == {"neurons": len(neurons), "typed": int(neurons["type"].notna().sum()),
                              "types": neurons["type"].nunique(), "connections": len(conn),
                              "synapses": int(conn["weight"].sum())}
    m = data["typeMatrix"]
    pivot = conn.pivot_table(index="preType", columns="postType", values="weight",
                             aggfunc="sum", fill_value=0)
    expected = pivot.reindex(index=m["preTypes"], columns=m["postTypes"], fill_value=0)
    assert sorted(m["preTypes"]) == sorted(set(conn["preType"]) | set(conn["postType"]))
    np.testing.assert_array_equal(np.array(m["synapses"]), expected.to_numpy())
    hist = conn["weight"].value_counts().sort_index()
    assert [(r["weight"], r["connections"]) for r in data["synapsesPerConnection"]] == \
        list(zip(hist.index.tolist(), hist.tolist(), strict=True))
    top = conn.sort_values(["weight", "bodyId_pre", "bodyId_post"],
                           ascending=[False, True, True]).head(len(data["topConnections"]))
    assert [(r["pre"], r["post"], r["weight"]) for r in data["topConnections"]] == \
        list(zip(top["bodyId_pre"], top["bodyId_post"], top["weight"], strict=True))
    assert [v["version"] for v in data["versions"]] == [1]
    for side, end in (("outDegrees", "bodyId_pre"), ("inDegrees", "bodyId_post")):
        degree = conn.groupby(end).size().reindex(neurons["bodyId"], fill_value=0)
        counted = degree.value_counts().sort_index()
        assert [(r["degree"], r["neurons"]) for r in data[side]] == \
            list(zip(counted.index.tolist(), counted.tolist(), strict=True))
    assert data["origin"].startswith("totals kept at ingest")


def test_neuron_partners_equal_the_raw_files(live_api: str, web_files: dict[str, Path]) -> None:
    conn = connections(web_files[WEB_PUBLIC])
    body = int(conn.groupby("bodyId_post")["weight"].sum().idxmax())
    data = _json(f"{live_api}datasets/{WEB_PUBLIC}/neurons/{body}/data.json")
    for direction, mine, theirs, their_type in (
            ("upstream", "bodyId_post", "bodyId_pre", "preType"),
            ("downstream", "bodyId_pre", "bodyId_post", "postType")):
        rows = conn[conn[mine] == body]
        by_type = rows.groupby(their_type)["weight"].agg(["sum", "count"])
        got = {r["type"]: (r["synapses"], r["partners"]) for r in data[f"{direction}Types"]}
        assert got == {t: (int(s), int(c)) for t, (s, c) in by_type.iterrows()}
        assert {(r["partner"], r["weight"]) for r in data[direction]} == set(
            zip(rows[theirs].tolist(), rows["weight"].tolist(), strict=True))


def test_private_dataset_needs_its_token(live_api: str, web_token: tuple[Path, str]) -> None:
    token = web_token[1]
    anonymous = httpx.get(f"{live_api}datasets").text
    assert WEB_PUBLIC in anonymous and WEB_PRIVATE not in anonymous
    assert WEB_PRIVATE in httpx.get(f"{live_api}datasets",
                                    headers={"authorization": f"Bearer {token}"}).text
    for path in ("", "/data.json"):
        assert httpx.get(f"{live_api}datasets/{WEB_PRIVATE}{path}").status_code == 404
        bad = httpx.get(f"{live_api}datasets/{WEB_PRIVATE}{path}",
                        headers={"authorization": "Bearer nonsense"})
        assert bad.status_code == 401
    assert _json(f"{live_api}datasets/{WEB_PRIVATE}/data.json", token)["counts"]["neurons"] > 0


def _page_checks(seen: bs.Visit, name: str) -> dict[str, list[list[str]]]:
    """Every figure's image decoded (natural width > 0); the tables' text, by id."""
    images = seen.page.evaluate(
        "Array.from(document.images).map(i => [i.closest('figure')?.id, i.naturalWidth])")
    assert images and all(width > 0 for _, width in images), images
    seen.screenshot(name)
    seen.assert_offline()
    assert not seen.console_errors, seen.console_errors
    return dict(seen.page.evaluate("""Object.fromEntries(Array.from(
        document.querySelectorAll('table')).map(t => [t.id, Array.from(t.rows).slice(1)
        .map(r => Array.from(r.cells).map(c => c.innerText.trim()))]))"""))


def test_dataset_page_renders_offline(live_api: str, web_files: dict[str, Path],
                                      browser: Any) -> None:
    conn = connections(web_files[WEB_PUBLIC])
    with bs.visit(browser) as seen:
        seen.page.goto(f"{live_api}datasets/{WEB_PUBLIC}")
        tables = _page_checks(seen, "dataset-page")
        figures = seen.page.evaluate(
            "Array.from(document.querySelectorAll('figure')).map(f => f.id)")
    assert {"heatmap", "weights", "out-degree", "in-degree"} <= set(figures)
    counts = tables["counts"][0]
    assert int(counts[3]) == len(conn) and int(counts[4]) == int(conn["weight"].sum())
    strongest = tables["top-connections"][0]
    assert int(strongest[4]) == int(conn["weight"].max())


def test_neuron_page_and_private_page_in_the_browser(live_api: str, web_files: dict[str, Path],
                                                      web_token: tuple[Path, str],
                                                      browser: Any) -> None:
    conn = connections(web_files[WEB_PRIVATE])
    body = int(conn.groupby("bodyId_pre")["weight"].sum().idxmax())
    url = f"{live_api}datasets/{WEB_PRIVATE}/neurons/{body}"
    with bs.visit(browser) as seen:
        answer = seen.page.goto(url)
        assert answer is not None and answer.status == 404
        assert str(body) not in seen.page.content()
    with bs.visit(browser, {"authorization": f"Bearer {web_token[1]}"}) as seen:
        seen.page.goto(url)
        tables = _page_checks(seen, "neuron-page")
    rows = conn[conn["bodyId_pre"] == body].groupby("postType")["weight"].sum()
    shown = {r[0]: int(r[1]) for r in tables["downstream-types"]}
    assert shown == {t: int(w) for t, w in rows.items()}
