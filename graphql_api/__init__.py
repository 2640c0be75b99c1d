"""The GraphQL API (Strawberry on FastAPI): circuit queries, read-only Cypher, export routes."""
