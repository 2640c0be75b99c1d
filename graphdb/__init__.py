"""The graph database layer: settings from the environment, the Neo4j driver, the local server."""
