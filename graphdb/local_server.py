"""The project's own Neo4j 5.26 server: fetched from Maven Central with `mvn`, run on loopback.

No Docker engine and no tarball are needed: Neo4j publishes the community server as Maven
artifacts (`org.neo4j:neo4j` pulls the server, Bolt and the import tool). `mvn` copies them and
APOC core into a cache directory once; each instance directory holds its own configuration, data,
logs and a generated password. The server runs the same entry point the tarball's launcher runs.

The configuration is part of the API's security (docs/security.md): only the few read-only APOC
functions the product uses are loaded (`PLUGIN_ALLOWLIST`), `LOAD CSV` can read neither files nor
URLs, and every transaction has a memory limit. The JVM does not exit on `OutOfMemoryError`: a
query that builds a value larger than the heap (string or list growth inside one expression, which
Neo4j's memory tracking does not see) fails with a transient error and the database lives.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from connectome_query.graphdb.settings import (
    APOC_VERSION,
    NEO4J_VERSION,
    LocalServerConfig,
    Neo4jTarget,
)

ENTRY_POINT = "org.neo4j.server.CommunityEntryPoint"
ADMIN_TOOL = "org.neo4j.cli.AdminTool"
JVM_FLAGS = (
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-XX:+UseG1GC",
    "-Djdk.tls.ephemeralDHKeySize=2048",
)
"""JVM options of the server and of neo4j-admin. Not `-XX:+ExitOnOutOfMemoryError` (Neo4j's
default): one read query that outgrows the heap would take the whole database down."""

PLUGIN_ALLOWLIST = (
    "apoc.version",
    "apoc.convert.fromJsonMap",
    "apoc.convert.fromJsonList",
    "apoc.map.removeKeys",
)
"""The APOC functions the server loads (`dbms.security.procedures.allowlist`): read-only, no
nested Cypher, no I/O. The read-only Cypher endpoint may call these (`graphql_api.cypher_policy`);
built-in procedures are not affected by the setting and are checked there."""

APOC_CONF = (
    "apoc.import.file.enabled=false",
    "apoc.export.file.enabled=false",
    "apoc.trigger.enabled=false",
)
"""`conf/apoc.conf` (APOC reads its settings there, not in neo4j.conf)."""

TX_MEMORY_SHARE = 4
"""One transaction may use 1/TX_MEMORY_SHARE of the heap (`db.memory.transaction.max`)."""
TOTAL_TX_MEMORY_PERCENT = 60
"""All transactions together may use this share of the heap."""
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def heap_bytes(size: str) -> int:
    """Bytes in a JVM-style size (`512m`, `2g`, `1048576`)."""
    text = size.strip().lower()
    unit = text[-1] if text[-1:] in ("k", "m", "g") else ""
    return int(text[: len(text) - len(unit)]) * _UNITS[unit]


def memory_limits(heap: str) -> tuple[str, str]:
    """(`db.memory.transaction.max`, `dbms.memory.transaction.total.max`) for a heap size, in
    MiB, never below 64 MiB for one transaction (a load batch needs that much)."""
    mib = heap_bytes(heap) >> 20
    one = max(64, mib // TX_MEMORY_SHARE)
    total = max(one, mib * TOTAL_TX_MEMORY_PERCENT // 100)
    return f"{one}m", f"{total}m"

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>connectome-query</groupId>
  <artifactId>neo4j-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.neo4j</groupId><artifactId>neo4j</artifactId><version>{neo4j}</version>
    </dependency>
    <dependency>
      <groupId>org.neo4j.procedure</groupId><artifactId>apoc-core</artifactId>
      <version>{apoc}</version>
    </dependency>
    <dependency>
      <groupId>org.neo4j.procedure</groupId><artifactId>apoc-common</artifactId>
      <version>{apoc}</version>
    </dependency>
  </dependencies>
</project>
"""


class Neo4jServerError(RuntimeError):
    """The local server could not be fetched, started, reached or stopped."""


@dataclass(frozen=True)
class ServerStatus:
    """What `status` reports."""

    running: bool
    pid: int | None
    uri: str
    home: Path
    version: str


class LocalNeo4j:
    """One local Neo4j instance: its files, its process, and how to reach it."""

    def __init__(self, config: LocalServerConfig) -> None:
        self.config = config
        self.home = config.home
        self.dist = config.cache / f"neo4j-{NEO4J_VERSION}-apoc-{APOC_VERSION}"

    # -- locations ---------------------------------------------------------------------------
    @property
    def lib_dir(self) -> Path:
        return self.dist / "lib"

    @property
    def plugins_dir(self) -> Path:
        return self.dist / "plugins"

    @property
    def pid_file(self) -> Path:
        return self.home / "run" / "neo4j.pid"

    @property
    def console_log(self) -> Path:
        return self.home / "logs" / "console.log"

    @property
    def password_file(self) -> Path:
        return self.home / "password"

    @property
    def uri(self) -> str:
        return f"bolt://127.0.0.1:{self.config.bolt_port}"

    def target(self) -> Neo4jTarget:
        """Connection details; the password exists once the instance was initialised."""
        password = self.password_file.read_text().strip() if self.password_file.exists() else ""
        return Neo4jTarget(uri=self.uri, user="neo4j", password=password, managed=True)

    # -- artifacts ---------------------------------------------------------------------------
    def fetch(self) -> Path:
        """Copy Neo4j and APOC jars from Maven Central into the cache, once.

        Central's `apoc-core` jar does not declare `apoc-common`, which it needs, so both are
        named; the two go to the plugins folder, their dependencies to lib/.
        """
        marker = self.dist / ".complete"
        if marker.exists() and any(self.plugins_dir.glob("apoc-common-*.jar")):
            return self.lib_dir
        mvn = shutil.which("mvn")
        if mvn is None:
            raise Neo4jServerError("`mvn` (Apache Maven) is not on PATH; it fetches Neo4j's jars")
        if shutil.which("java") is None:
            raise Neo4jServerError("`java` (Java 17) is not on PATH; Neo4j 5.26 needs it")
        staging = self.dist.with_name(self.dist.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        (staging / "pom.xml").write_text(_POM.format(neo4j=NEO4J_VERSION, apoc=APOC_VERSION))
        cmd = [
            mvn, "-q", "-B", "-f", str(staging / "pom.xml"),
            "dependency:copy-dependencies", f"-DoutputDirectory={staging / 'lib'}",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr)[-2000:]
            raise Neo4jServerError(f"mvn could not fetch Neo4j {NEO4J_VERSION}:\n{tail}")
        # APOC is a plugin: Neo4j loads procedures from the plugins folder, not the classpath.
        (staging / "plugins").mkdir()
        for jar in (staging / "lib").glob("apoc-*.jar"):
            jar.rename(staging / "plugins" / jar.name)
        shutil.rmtree(self.dist, ignore_errors=True)
        staging.rename(self.dist)
        marker.write_text(f"neo4j {NEO4J_VERSION}\napoc {APOC_VERSION}\n")
        return self.lib_dir

    # -- configuration -----------------------------------------------------------------------
    def write_config(self) -> None:
        """Write `conf/neo4j.conf` for a loopback-only server sized from the config."""
        for sub in ("conf", "data", "logs", "run", "import", "run/no-csv-import"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        c = self.config
        tx_max, tx_total = memory_limits(c.heap)
        lines = [
            "# Written by `connectome neo4j start`; edits are overwritten on the next start.",
            "server.default_listen_address=127.0.0.1",
            "server.bolt.enabled=true",
            f"server.bolt.listen_address=127.0.0.1:{c.bolt_port}",
            "server.http.enabled=false",
            "server.https.enabled=false",
            "dbms.security.auth_enabled=true",
            f"server.memory.pagecache.size={c.pagecache}",
            f"db.transaction.timeout={c.tx_timeout}",
            # Only the listed plugin functions load; nothing is `unrestricted`.
            f"dbms.security.procedures.allowlist={','.join(PLUGIN_ALLOWLIST)}",
            # LOAD CSV reads no file and no URL (every address is blocked).
            "dbms.security.allow_csv_import_from_file_urls=false",
            "internal.dbms.cypher_ip_blocklist=0.0.0.0/0,::/0",
            f"db.memory.transaction.max={tx_max}",
            f"dbms.memory.transaction.total.max={tx_total}",
            "dbms.usage_report.enabled=false",
            "db.logs.query.enabled=OFF",
            f"server.directories.data={self.home / 'data'}",
            f"server.directories.logs={self.home / 'logs'}",
            f"server.directories.plugins={self.plugins_dir}",
            # An empty folder nothing writes to (import/ is the offline importer's scratch).
            f"server.directories.import={self.home / 'run' / 'no-csv-import'}",
            f"server.directories.run={self.home / 'run'}",
        ]
        (self.home / "conf" / "neo4j.conf").write_text("\n".join(lines) + "\n")
        (self.home / "conf" / "apoc.conf").write_text("\n".join(APOC_CONF) + "\n")

    def _java_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["NEO4J_HOME"] = str(self.home)
        env["NEO4J_CONF"] = str(self.home / "conf")
        return env

    def admin(self, *args: str, heap: str = "1g") -> subprocess.CompletedProcess[str]:
        """Run `neo4j-admin` (the AdminTool main class) against this instance."""
        cmd = ["java", f"-Xmx{heap}", *JVM_FLAGS, "-cp", f"{self.lib_dir}/*", ADMIN_TOOL, *args]
        return subprocess.run(
            cmd, capture_output=True, text=True, env=self._java_env(), check=False
        )

    # -- dumps (Neo4j Desktop loads these) -----------------------------------------------
    def dump(self, to_dir: Path) -> Path:
        """Write the `neo4j` database to `to_dir/neo4j.dump`; the server must be stopped
        (Community edition cannot dump a running database)."""
        if self.pid() is not None:
            raise Neo4jServerError("stop the server before dumping: Community cannot dump online")
        self.fetch()
        self.write_config()
        to_dir.mkdir(parents=True, exist_ok=True)
        proc = self.admin("database", "dump", "neo4j", f"--to-path={to_dir}",
                          "--overwrite-destination=true")
        if proc.returncode != 0:
            raise Neo4jServerError(f"neo4j-admin database dump failed:\n"
                                   f"{(proc.stdout + proc.stderr)[-2000:]}")
        return to_dir / "neo4j.dump"

    def load_dump(self, dump_file: Path) -> None:
        """Replace the `neo4j` database with `dump_file` (any name); the server must be
        stopped. A fresh instance may load before its first start."""
        if not dump_file.is_file():
            raise Neo4jServerError(f"{dump_file}: no such dump file")
        if self.pid() is not None:
            raise Neo4jServerError("stop the server before loading a dump")
        self.fetch()
        self.write_config()
        staging = self.home / "run" / "load"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            # neo4j-admin reads `<database>.dump` from a folder: link the file in under that name.
            (staging / "neo4j.dump").symlink_to(dump_file.resolve())
            proc = self.admin("database", "load", "neo4j", f"--from-path={staging}",
                              "--overwrite-destination=true")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if proc.returncode != 0:
            raise Neo4jServerError(f"neo4j-admin database load failed for {dump_file}:\n"
                                   f"{(proc.stdout + proc.stderr)[-2000:]}")

    def _initialise_password(self) -> None:
        if self.password_file.exists():
            return
        password = "p" + secrets.token_urlsafe(18)  # never starts with '-' (an option)
        proc = self.admin("dbms", "set-initial-password", password)
        if proc.returncode != 0:
            raise Neo4jServerError(f"setting the initial password failed:\n{proc.stderr[-2000:]}")
        self.password_file.write_text(password + "\n")
        self.password_file.chmod(0o600)

    # -- process -----------------------------------------------------------------------------
    def pid(self) -> int | None:
        """The server's process id, if it is alive."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        cmdline = Path(f"/proc/{pid}/cmdline")
        if cmdline.exists() and ENTRY_POINT.encode() not in cmdline.read_bytes():
            return None
        return pid

    def _port_in_use(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            return sock.connect_ex(("127.0.0.1", self.config.bolt_port)) == 0

    def start(self, timeout: float = 180.0) -> Neo4jTarget:
        """Fetch if needed, configure, start, and return once the server answers a query."""
        if self.pid() is not None:
            self.wait_ready(timeout)
            return self.target()
        if self._port_in_use():
            raise Neo4jServerError(
                f"port {self.config.bolt_port} is taken by another process; set "
                "CONNECTOME_NEO4J_BOLT_PORT to a free port, or NEO4J_URI to use that server"
            )
        self.fetch()
        self.write_config()
        self._initialise_password()
        cmd = [
            "java", f"-Xms{self.config.heap}", f"-Xmx{self.config.heap}", *JVM_FLAGS,
            # As the tarball's launcher does: plugins are on the classpath (APOC registers
            # extensions through ServiceLoader) and in the procedures folder.
            "-cp", f"{self.lib_dir}/*:{self.plugins_dir}/*", ENTRY_POINT,
            f"--home-dir={self.home}", f"--config-dir={self.home / 'conf'}", "--console-mode",
        ]
        with self.console_log.open("ab") as log:
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self._java_env(), start_new_session=True, cwd=self.home,
            )
        self.pid_file.write_text(f"{proc.pid}\n")
        try:
            self.wait_ready(timeout, proc=proc)
        except Neo4jServerError:
            self.stop()
            raise
        return self.target()

    def wait_ready(self, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
        """Poll until `RETURN 1` succeeds over Bolt, or raise with the log's tail."""
        import neo4j  # local import: keeps `connectome --help` fast

        target = self.target()
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise Neo4jServerError(
                    f"Neo4j exited with code {proc.returncode} while starting:\n{self.log_tail()}"
                )
            try:
                # A plain session run: execute_query would retry with back-off for up to
                # 30 s inside one poll, delaying the start by up to that much.
                with neo4j.GraphDatabase.driver(
                    target.uri, auth=(target.user, target.password), connection_timeout=2
                ) as driver, driver.session(database=target.database) as session:
                    session.run("RETURN 1").consume()
                return
            except Exception as exc:  # not up yet: refused, service unavailable, auth warm-up
                last = exc
                time.sleep(0.5)
        raise Neo4jServerError(
            f"Neo4j did not answer within {timeout:.0f}s ({last}):\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 90.0) -> bool:
        """Shut the server down cleanly (SIGTERM, then SIGKILL after `timeout`)."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process_gone(pid):
                break
            time.sleep(0.2)
        else:
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True

    def status(self) -> ServerStatus:
        pid = self.pid()
        return ServerStatus(
            running=pid is not None, pid=pid, uri=self.uri, home=self.home, version=NEO4J_VERSION
        )

    def log_tail(self, lines: int = 40) -> str:
        """The end of the console log, where Neo4j prints start-up failures."""
        if not self.console_log.exists():
            return "(no log yet)"
        text = self.console_log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def dump_database(server: LocalNeo4j, output: Path, timeout: float = 180.0) -> Path:
    """Dump the local database to `output` (a file, or a folder to hold `neo4j.dump`),
    stopping the server for the dump and starting it again if it was running."""
    target = output / "neo4j.dump" if output.is_dir() else output
    target.parent.mkdir(parents=True, exist_ok=True)
    was_running = server.pid() is not None
    if was_running:
        server.stop()
    staging = target.parent / f".{target.name}.partial"
    try:
        written = server.dump(staging)
        written.replace(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if was_running:
            server.start(timeout=timeout)
    return target


def load_database(server: LocalNeo4j, dump_file: Path, timeout: float = 180.0) -> bool:
    """Replace the local database with `dump_file`, stopping the server for the load and
    starting it again if it was running. Returns whether it was running."""
    was_running = server.pid() is not None
    if was_running:
        server.stop()
    try:
        server.load_dump(dump_file)
    finally:
        if was_running:
            server.start(timeout=timeout)
    return was_running


def process_gone(pid: int) -> bool:
    """Whether process `pid` has exited (gone, or a zombie waiting to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"
