"""DataLoaders: look-ups that many objects of one response ask for, batched into one query.

A page of neurons each asking for its partners, or a page of chandelier cells each asking for
its AIS targets, becomes one Cypher query per dataset (and direction), not one per object. The
batch queries take `$keys`, a list of maps tagged with `key`, and return rows tagged the same.
A request's loaders live on its context (`ApiContext.loaders`), created with it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, NamedTuple, Protocol, TypeVar

from strawberry.dataloader import DataLoader

from connectome_query.graphql_api import circuit_cypher, cypher

Rows = list[dict[str, Any]]
Read = Callable[[str, dict[str, Any]], Awaitable[Rows]]
"""(Cypher, parameters) -> rows, in a read transaction."""

PARTNER_QUERIES: dict[tuple[str, str | None], str] = {
    ("upstream", None): cypher.UPSTREAM_BATCH,
    ("downstream", None): cypher.DOWNSTREAM_BATCH,
    ("electrical", None): cypher.ELECTRICAL_BATCH,
    **cypher.MODULATORY_BATCH,
}
"""(direction, relationship type or None for synapses) -> batch query."""


class PartnerKey(NamedTuple):
    """One partner list: whose, which direction, with which threshold and page size."""

    direction: str
    dataset: str
    body_id: int
    min_weight: int
    first: int
    after_weight: int | None = None
    after_body: int | None = None
    """The page starts after the partner with this weight and bodyId (None: the first page)."""
    modulatory: str | None = None
    """A neuromodulator relationship type (Monoamine, Neuropeptide) instead of synapses."""


class AisKey(NamedTuple):
    """The AIS targets of one chandelier cell, past a synapse threshold, at most `first`."""

    dataset: str
    body_id: int
    min_synapses: int
    first: int


class _Keyed(Hashable, Protocol):
    @property
    def dataset(self) -> str: ...


K = TypeVar("K", bound=_Keyed)


async def load_batched(read: Read, keys: Sequence[K], query: Callable[[K], str],
                       params: Callable[[K], dict[str, Any]]) -> list[Rows]:
    """Rows for each key, one `read` per (query, dataset) group of keys."""
    groups: dict[tuple[str, str], list[K]] = {}
    for key in keys:
        groups.setdefault((query(key), key.dataset), []).append(key)
    results: dict[K, Rows] = {}
    for (text, dataset), group in groups.items():
        batch = [{"key": i, **params(k)} for i, k in enumerate(group)]
        rows = await read(text, {"dataset": dataset, "keys": batch})
        by_index = {r["key"]: r["rows"] for r in rows}
        for i, key in enumerate(group):
            results[key] = by_index.get(i, [])
    return [results[k] for k in keys]


class Loaders:
    """The DataLoaders of one request."""

    def __init__(self, read: Read, read_circuit: Read) -> None:
        """`read` for the neuron fields, `read_circuit` for circuit queries (their timeout)."""

        async def partners(keys: list[PartnerKey]) -> list[Rows]:
            return await load_batched(
                read, keys, lambda k: PARTNER_QUERIES[k.direction, k.modulatory],
                lambda k: {"bodyId": k.body_id, "minWeight": k.min_weight, "first": k.first,
                           "afterWeight": k.after_weight, "afterBody": k.after_body})

        async def ais_targets(keys: list[AisKey]) -> list[Rows]:
            return await load_batched(
                read_circuit, keys, lambda _: circuit_cypher.AIS_TARGETS_BATCH,
                lambda k: {"bodyId": k.body_id, "minSynapses": k.min_synapses,
                           "first": k.first})

        self.partners: DataLoader[PartnerKey, Rows] = DataLoader(load_fn=partners)
        self.ais_targets: DataLoader[AisKey, Rows] = DataLoader(load_fn=ais_targets)
