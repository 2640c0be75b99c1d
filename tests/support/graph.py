"""Reading the graph directly in tests: which version key a dataset's nodes carry now."""

from __future__ import annotations

import neo4j

from connectome_query.graphdb import catalog


def current_key(driver: neo4j.Driver, name: str) -> str:
    """The `dataset` property of the nodes of dataset `name`'s current version."""
    return catalog.resolve(driver, name).key
