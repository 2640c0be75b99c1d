"""A live API (uvicorn on loopback, auth required) over a public and a private neuPrint-style
dataset, a token for the private one, and headless Chromium with the outside network cut."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import neo4j
import pytest

from connectome_query.graphdb.catalog import set_public
from connectome_query.graphdb.settings import Neo4jTarget
from connectome_query.graphql_api.app import create_app
from connectome_query.graphql_api.auth import AuthConfig, TokenStore
from connectome_query.ingest.loader import load
from connectome_query.ingest.sources import read_source
from tests.support import browser as browser_support
from tests.support.neuprint_files import write_neuprint
from tests.support.web_data import WEB_EM, WEB_EM_PRIVATE, WEB_PRIVATE, WEB_PUBLIC


@pytest.fixture(scope="session")
def web_files(driver: neo4j.Driver, tmp_path_factory: pytest.TempPathFactory,
              ) -> dict[str, Path]:
    """Two datasets loaded from neuPrint files; returns each one's folder of raw files."""
    folders = {}
    for i, name in enumerate((WEB_PUBLIC, WEB_PRIVATE)):
        folder = tmp_path_factory.mktemp(name)
        write_neuprint(folder, neurons=80, edges=400, gap=20, seed=300 + i)
        load(driver, read_source(str(folder)), name)
        folders[name] = folder
    set_public(driver, WEB_PUBLIC, True)
    set_public(driver, WEB_PRIVATE, False)
    return folders


@pytest.fixture(scope="session")
def web_token(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A tokens file with one token granting the private dataset."""
    path = tmp_path_factory.mktemp("web-tokens") / "tokens.json"
    _, secret = TokenStore(path).create("web-tests", [WEB_PRIVATE])
    return path, secret


@pytest.fixture(scope="session")
def live_api(neo4j_target: Neo4jTarget, web_files: dict[str, Path], em_dataset: str,
             web_token: tuple[Path, str]) -> Iterator[str]:
    """Base URL ('http://127.0.0.1:PORT/') of the API with auth required."""
    app = create_app(neo4j_target, auth=AuthConfig(required=True, tokens_file=web_token[0]))
    with browser_support.serve(app) as url:
        yield url



@pytest.fixture(scope="session")
def em_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic 64³ EM directory with its truth (image, segmentation, skeletons, synapses)."""
    from connectome_query.reconstruct import synth, synthetic_em

    out = tmp_path_factory.mktemp("web-em") / "em"
    synthetic_em.write_synthetic_em(
        out, synth.SynthConfig((64, 64, 64), (40.0, 16.0, 16.0), "clean", 3))
    return out


@pytest.fixture(scope="session")
def em_dataset(driver: neo4j.Driver, em_dir: Path, web_files: dict[str, Path]) -> str:
    """The EM directory's truth/ loaded as a public dataset (its volumes recorded at ingest),
    and the same as a private one."""
    for name, public in ((WEB_EM, True), (WEB_EM_PRIVATE, False)):
        load(driver, read_source(str(em_dir / "truth")), name)
        set_public(driver, name, public)
    return WEB_EM
