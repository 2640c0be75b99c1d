"""Loading connectomes into Neo4j: readers parse sources into tables, `tables` validates them,
`loader` writes them."""
