"""Numbered migrations apply once, in order, and are safe to re-run."""

from __future__ import annotations

import neo4j
import pytest

from connectome_query.schema.migrate import applied_migrations, apply_migrations, load_migrations

pytestmark = pytest.mark.neo4j


def test_migration_files_are_numbered_in_order() -> None:
    ids = [m.id for m in load_migrations()]
    assert ids == sorted(ids) and ids[0] == 1 and len(ids) == len(set(ids))
    assert all(m.statements for m in load_migrations())


def test_apply_is_idempotent(driver: neo4j.Driver) -> None:
    apply_migrations(driver)
    assert apply_migrations(driver) == []
    assert applied_migrations(driver) == {m.id for m in load_migrations()}
    records, _, _ = driver.execute_query("SHOW CONSTRAINTS YIELD name RETURN collect(name) AS c")
    assert {"neuron_body_unique", "meta_dataset_unique", "synapse_id_unique"} <= set(
        records[0]["c"])


def test_uniqueness_is_per_dataset(driver: neo4j.Driver) -> None:
    apply_migrations(driver)
    driver.execute_query("MATCH (n:Neuron) WHERE n.dataset IN ['t_u1', 't_u2'] DETACH DELETE n")
    driver.execute_query("CREATE (:Neuron {dataset: 't_u1', bodyId: 1}), "
                         "(:Neuron {dataset: 't_u2', bodyId: 1})")
    with pytest.raises(neo4j.exceptions.ConstraintError):
        driver.execute_query("CREATE (:Neuron {dataset: 't_u1', bodyId: 1})")
    driver.execute_query("MATCH (n:Neuron) WHERE n.dataset IN ['t_u1', 't_u2'] DETACH DELETE n")
