"""GraphiQL and Swagger UI from our own copies of their assets: in Chromium with every outside
request cut, GraphiQL runs a query and shows the answer, Swagger lists the routes; the copies
are the files Strawberry's page names (its SRI hashes match)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from strawberry.http.ides import get_graphql_ide_html

from connectome_query.graphql_api.web.assets import STATIC, UNPKG_TO_VENDOR, local_graphiql
from tests.support import browser as bs
from tests.support.web_data import WEB_PUBLIC

pytestmark = [pytest.mark.neo4j]

CELL_TYPES = '{ cellTypes(dataset: "' + WEB_PUBLIC + '") { type neurons } }'


def test_vendored_files_are_the_published_ones() -> None:
    """Each copy's SHA-384 equals the integrity hash Strawberry's page gives its CDN address."""
    html = get_graphql_ide_html("graphiql")
    for url, local in UNPKG_TO_VENDOR.items():
        found = re.search(re.escape(url) + r'"\s*integrity="sha384-([^"]+)"', html)
        assert found, f"{url} has no integrity hash in Strawberry's page"
        digest = base64.b64encode(hashlib.sha384((STATIC / "vendor" / local).read_bytes())
                                  .digest()).decode()
        assert digest == found.group(1), local


def test_local_page_names_no_outside_address() -> None:
    html = local_graphiql(get_graphql_ide_html("graphiql"))
    assert "unpkg.com" not in html
    assert not re.search(r"""(src|href)=["']https?://""", html)
    for local in UNPKG_TO_VENDOR.values():
        assert f"/static/vendor/{local}" in html
        assert (STATIC / "vendor" / local).is_file()
    for folder in {Path(local).parts[0] for local in UNPKG_TO_VENDOR.values()}:
        assert (STATIC / "vendor" / folder / "LICENSE").is_file(), folder


def test_graphql_link_answers_json_to_clients_and_the_editor_to_browsers(live_api: str) -> None:
    query = CELL_TYPES
    url = f"{live_api}graphql?query={quote(query)}"
    as_client = httpx.get(url, headers={"accept": "application/json"})
    assert as_client.status_code == 200
    assert as_client.json()["data"]["cellTypes"]
    as_browser = httpx.get(url, headers={"accept": "text/html,application/xhtml+xml"})
    assert as_browser.headers["content-type"].startswith("text/html")
    assert "/static/vendor/graphiql/graphiql.min.js" in as_browser.text


def test_graphiql_runs_a_query_offline(live_api: str, browser: Any) -> None:
    query = CELL_TYPES
    expected = httpx.post(f"{live_api}graphql", json={"query": query}).json()
    with bs.visit(browser) as seen:
        seen.page.goto(f"{live_api}graphql?query={quote(query)}")
        seen.page.wait_for_selector(".graphiql-execute-button", timeout=60_000)
        seen.page.click(".graphiql-execute-button")
        seen.page.locator(".result-window").get_by_text('"cellTypes"').wait_for(timeout=30_000)
        # The editor draws only the lines in view; its CodeMirror holds the whole answer.
        shown = seen.page.evaluate(
            "document.querySelector('.result-window .CodeMirror').CodeMirror.getValue()")
        seen.screenshot("graphiql")
        seen.assert_offline()
    assert json.loads(shown) == expected
    assert expected["data"]["cellTypes"]
    assert not seen.console_errors, seen.console_errors


def test_swagger_lists_the_routes_offline(live_api: str, browser: Any) -> None:
    spec = httpx.get(f"{live_api}openapi.json").json()
    with bs.visit(browser) as seen:
        seen.page.goto(f"{live_api}docs")
        seen.page.wait_for_selector(".opblock", timeout=60_000)
        shown = seen.page.locator(".opblock-summary-path").all_inner_texts()
        seen.screenshot("swagger")
        seen.assert_offline()
    assert {s.replace("\u200b", "") for s in shown} == set(spec["paths"]), json.dumps(shown)
