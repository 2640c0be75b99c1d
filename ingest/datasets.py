"""The datasets the graph holds, as their `Meta` nodes describe them."""

from __future__ import annotations

from dataclasses import dataclass

import neo4j

from connectome_query.schema.model import META


@dataclass(frozen=True)
class DatasetSummary:
    """One dataset's name, load status and totals."""

    dataset: str
    status: str | None
    neurons: int
    chemical_synapses: int
    gap_junctions: int


def list_datasets(driver: neo4j.Driver, database: str = "neo4j") -> list[DatasetSummary]:
    """Every dataset in the graph, by name."""
    records, _, _ = driver.execute_query(
        f"MATCH (m:{META}) RETURN m.dataset AS dataset, m.status AS status, "
        "m.neuronCount AS neurons, m.chemicalSynapses AS chem, m.gapJunctions AS gap "
        "ORDER BY dataset", database_=database, routing_=neo4j.RoutingControl.READ)
    return [DatasetSummary(r["dataset"], r["status"], int(r["neurons"] or 0),
                           int(r["chem"] or 0), int(r["gap"] or 0)) for r in records]
