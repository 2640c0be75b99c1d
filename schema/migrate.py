"""Numbered schema migrations (`migrations/NNNN_name.cypher`), applied once each, in order.

Each statement is idempotent on its own (`IF NOT EXISTS`), and each applied file is recorded as a
`(:SchemaMigration {id})` node, so running `apply_migrations` any number of times is safe.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import neo4j

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.cypher$")


@dataclass(frozen=True)
class Migration:
    """One numbered file of Cypher schema statements."""

    id: int
    name: str
    statements: tuple[str, ...]


def load_migrations() -> list[Migration]:
    """All migration files shipped in `schema/migrations`, in order."""
    found: list[Migration] = []
    for entry in resources.files("connectome_query.schema").joinpath("migrations").iterdir():
        match = _FILE.match(entry.name)
        if not match:
            continue
        text = "\n".join(
            line for line in entry.read_text().splitlines() if not line.lstrip().startswith("//")
        )
        statements = tuple(s.strip() for s in text.split(";") if s.strip())
        found.append(Migration(int(match.group(1)), match.group(2), statements))
    found.sort(key=lambda m: m.id)
    ids = [m.id for m in found]
    if len(ids) != len(set(ids)):
        raise RuntimeError(f"duplicate migration numbers in schema/migrations: {ids}")
    return found


def applied_migrations(driver: neo4j.Driver, database: str = "neo4j") -> set[int]:
    records, _, _ = driver.execute_query(
        "MATCH (m:SchemaMigration) RETURN m.id AS id", database_=database
    )
    return {int(r["id"]) for r in records}


def apply_migrations(driver: neo4j.Driver, database: str = "neo4j",
                     index_wait_s: int = 300) -> list[int]:
    """Apply the migrations not yet recorded and wait up to `index_wait_s` for every index to
    be online; return the ids applied now."""
    done = applied_migrations(driver, database)
    applied: list[int] = []
    for migration in load_migrations():
        if migration.id in done:
            continue
        for statement in migration.statements:
            driver.execute_query(statement, database_=database)
        driver.execute_query(
            "MERGE (m:SchemaMigration {id: $id}) "
            "SET m.name = $name, m.appliedAt = datetime()",
            id=migration.id, name=migration.name, database_=database,
        )
        applied.append(migration.id)
    driver.execute_query("CALL db.awaitIndexes($s)", s=index_wait_s, database_=database)
    return applied
