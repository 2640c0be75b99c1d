"""Per-request context: the driver, and DataLoaders that batch partner look-ups."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, NamedTuple

import neo4j
from strawberry.dataloader import DataLoader
from strawberry.fastapi import BaseContext

from connectome_query.graphql_api import cypher
from connectome_query.graphql_api.db import read

_BATCH_QUERY = {
    "upstream": cypher.UPSTREAM_BATCH,
    "downstream": cypher.DOWNSTREAM_BATCH,
    "electrical": cypher.ELECTRICAL_BATCH,
}


class PartnerKey(NamedTuple):
    """One partner list: whose, which direction, with which threshold and page size."""

    direction: str
    dataset: str
    body_id: int
    min_weight: int
    first: int


class ApiContext(BaseContext):
    """What resolvers see as `info.context`."""

    def __init__(self, driver: neo4j.AsyncDriver, database: str = "neo4j") -> None:
        super().__init__()
        self.driver = driver
        self.database = database
        self.partners: DataLoader[PartnerKey, list[dict[str, Any]]] = DataLoader(
            load_fn=self._load_partners
        )
        self._datasets: set[str] | None = None

    async def dataset_names(self) -> set[str]:
        """Names of the datasets in the graph (read once per request)."""
        if self._datasets is None:
            rows = await read(self.driver, "MATCH (m:Meta) RETURN m.dataset AS name", {},
                              database=self.database)
            self._datasets = {r["name"] for r in rows}
        return self._datasets

    async def _load_partners(self, keys: list[PartnerKey]) -> list[list[dict[str, Any]]]:
        """One Cypher query per (direction, dataset) group, however many neurons ask."""
        results: dict[PartnerKey, list[dict[str, Any]]] = {}
        groups: dict[tuple[str, str], list[PartnerKey]] = defaultdict(list)
        for key in keys:
            groups[(key.direction, key.dataset)].append(key)
        for (direction, dataset), group in groups.items():
            params = {
                "dataset": dataset,
                "keys": [
                    {"key": i, "bodyId": k.body_id, "minWeight": k.min_weight, "first": k.first}
                    for i, k in enumerate(group)
                ],
            }
            rows = await read(self.driver, _BATCH_QUERY[direction], params,
                              database=self.database)
            by_index = {r["key"]: r["rows"] for r in rows}
            for i, key in enumerate(group):
                results[key] = by_index.get(i, [])
        return [results[k] for k in keys]
