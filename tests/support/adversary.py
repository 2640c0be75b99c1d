"""What the adversarial API tests watch: the whole database's fingerprint, a local HTTP server
that records every request it gets, a transaction of another client that must survive, a canary
file, and a Neo4j whose own settings stop nothing (to test the endpoint's plan check alone)."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import neo4j

from connectome_query.graphdb.local_server import LocalNeo4j
from connectome_query.graphdb.settings import LocalServerConfig, cache_dir
from tests.support.net import free_port


def db_fingerprint(driver: neo4j.Driver) -> dict[str, Any]:
    """Everything a write could change: counts per label and type, a digest of every node's
    and relationship's properties, the schema (indexes, constraints), and the Meta nodes."""
    def q(cypher: str) -> list[dict[str, Any]]:
        records, _, _ = driver.execute_query(cypher)
        return [r.data() for r in records]

    labels = q("MATCH (n) UNWIND labels(n) AS l RETURN l, count(*) AS c ORDER BY l")
    types = q("MATCH ()-[r]->() RETURN type(r) AS t, count(*) AS c ORDER BY t")
    digest = hashlib.sha256()
    for row in q("MATCH (n) RETURN elementId(n) AS id, properties(n) AS p ORDER BY id"):
        digest.update(json.dumps(row, sort_keys=True, default=str).encode())
    for row in q("MATCH ()-[r]->() RETURN elementId(r) AS id, properties(r) AS p ORDER BY id"):
        digest.update(json.dumps(row, sort_keys=True, default=str).encode())
    schema = q("SHOW INDEXES YIELD name RETURN collect(name) AS names")[0]["names"]
    constraints = q("SHOW CONSTRAINTS YIELD name RETURN collect(name) AS names")[0]["names"]
    return {"labels": labels, "types": types, "digest": digest.hexdigest(),
            "indexes": sorted(schema), "constraints": sorted(constraints)}


@dataclass
class Recorder:
    """A local HTTP server; `requests` lists the paths it was asked for."""

    port: int
    requests: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def recording_http_server() -> Iterator[Recorder]:
    """An HTTP server on 127.0.0.1 answering every GET with a small CSV, recording each one."""
    recorder = Recorder(port=free_port())

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            recorder.requests.append(self.path)
            body = b"leaked,1\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", recorder.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def other_client_transaction(driver: neo4j.Driver, token: str) -> Iterator[neo4j.Transaction]:
    """An open transaction of another client, its query naming `token`; it must still commit
    at the end (nobody terminated it). It stays open for as long as a fuzzing module runs,
    so it asks for an hour rather than the server's default timeout."""
    with driver.session() as session:
        tx = session.begin_transaction(metadata={"victim": token}, timeout=3600)
        tx.run(f"RETURN '{token}' AS victim").consume()
        yield tx
        tx.run("RETURN 1").consume()
        tx.commit()


def permissive_server(home: Path) -> LocalNeo4j:
    """A Neo4j configured the careless way: every APOC procedure loaded and unrestricted, file
    URLs allowed from `home/import`, no IP block list. Against it, only the endpoint's own plan
    check stands between a query and its effects."""

    class Permissive(LocalNeo4j):
        def write_config(self) -> None:
            super().write_config()
            conf = self.home / "conf" / "neo4j.conf"
            lines = [line for line in conf.read_text().splitlines()
                     if not line.startswith(("dbms.security.procedures",
                                             "dbms.security.allow_csv",
                                             "internal.dbms.cypher_ip_blocklist",
                                             "server.directories.import"))]
            lines += ["dbms.security.procedures.allowlist=apoc.*",
                      "dbms.security.procedures.unrestricted=apoc.*",
                      "dbms.security.allow_csv_import_from_file_urls=true",
                      f"server.directories.import={self.home / 'import'}"]
            conf.write_text("\n".join(lines) + "\n")
            (self.home / "conf" / "apoc.conf").write_text(
                "apoc.import.file.enabled=true\napoc.import.file.use_neo4j_config=true\n")

    return Permissive(LocalServerConfig(home=home, cache=cache_dir(), bolt_port=free_port(),
                                        heap="512m", pagecache="64m"))
