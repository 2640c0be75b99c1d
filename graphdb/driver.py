"""Opening a driver to whichever server the settings name.

Server notifications (e.g. "label does not exist yet" on a new database) are switched off: they
are advice for query authors, and the driver would log each one as a warning to the user.
"""

from __future__ import annotations

import neo4j

from connectome_query.graphdb.local_server import LocalNeo4j, Neo4jServerError
from connectome_query.graphdb.settings import Neo4jTarget, external_target, local_server_config


def local_server() -> LocalNeo4j:
    """The project-managed local instance described by the environment."""
    return LocalNeo4j(local_server_config())


def resolve_target() -> Neo4jTarget:
    """`NEO4J_URI` when set, else the local server (which must be running)."""
    external = external_target()
    if external is not None:
        return external
    server = local_server()
    if server.pid() is None:
        raise Neo4jServerError(
            "the local Neo4j server is not running: start it with `connectome neo4j start`, "
            "or set NEO4J_URI (with NEO4J_USER and NEO4J_PASSWORD) to use another server"
        )
    return server.target()


def open_driver(target: Neo4jTarget | None = None) -> neo4j.Driver:
    """A synchronous driver for ingest, migrations and the CLI."""
    t = target or resolve_target()
    return neo4j.GraphDatabase.driver(t.uri, auth=(t.user, t.password),
                                      notifications_min_severity="OFF")


def open_async_driver(target: Neo4jTarget | None = None) -> neo4j.AsyncDriver:
    """An asynchronous driver for the API."""
    t = target or resolve_target()
    return neo4j.AsyncGraphDatabase.driver(t.uri, auth=(t.user, t.password),
                                           notifications_min_severity="OFF")
