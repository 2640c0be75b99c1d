"""Fixtures for the schema tests: the Bloom synthetic table loaded once."""

from __future__ import annotations

import neo4j
import pandas as pd
import pytest

from tests.support.bloom import SYN_DATASET, Synthetic, make_synthetic


@pytest.fixture(scope="session")
def synthetic(driver: neo4j.Driver, tmp_path_factory: pytest.TempPathFactory) -> Synthetic:
    """The synthetic table loaded as dataset `t_bloom_syn` through the real reader and loader."""
    from connectome_query.ingest.loader import load
    from connectome_query.ingest.sources import read_source

    syn_path, neurons_path = make_synthetic(tmp_path_factory.mktemp("bloom-syn"))
    load(driver, read_source(str(syn_path), neurons=neurons_path), SYN_DATASET)
    return Synthetic(neurons=pd.read_csv(neurons_path), synapses=pd.read_csv(syn_path))
