"""API tokens, who is asking, and whether they may read a dataset (`can_read`, the one decision).

Tokens look like `cq_<id>_<secret>`; only sha256(secret) is kept, in a JSON file, never in the
graph, so no Cypher query (not even through the read-only endpoint) can see a credential; a plain
hash suffices for a 256-bit random secret. Auth is off unless `CONNECTOME_AUTH=required`; then a
token reads its own datasets (`*`: all) plus the public ones (`Meta.public = true`), and a request
without one reads the public ones. A dataset the caller may not read gets the same error as one
that does not exist, so nothing leaks about private datasets.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import neo4j
from starlette.requests import HTTPConnection

from connectome_query.graphdb import catalog
from connectome_query.graphdb.settings import ApiSettings, from_env, local_server_config
from connectome_query.graphql_api.db import read
from connectome_query.graphql_api.errors import QueryError
from connectome_query.graphql_api.ratelimit import TokenBucketLimiter

ALL_DATASETS = "*"
TOKEN_RE = re.compile(r"^cq_([0-9a-f]{8})_([A-Za-z0-9_\-]{20,100})$")
PUBLIC_CACHE_S = 5.0
DEFAULT_RATE = 20.0
DEFAULT_BURST = 40


class AuthError(Exception):
    """A credential that is malformed, unknown or revoked (HTTP 401)."""


def default_tokens_file() -> Path:
    """`CONNECTOME_TOKENS_FILE`, else `tokens.json` beside the local Neo4j home."""
    explicit = from_env(ApiSettings).tokens_file
    if explicit is not None:
        return explicit
    return local_server_config().home.parent / "tokens.json"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class ApiToken:
    """One stored token: its id, the hash of its secret, and what it may read."""

    id: str
    hash: str
    name: str
    datasets: list[str]
    createdAt: str
    revoked: bool = False

    def public_view(self) -> dict[str, Any]:
        """What `tokens list` shows: everything but the hash."""
        view = asdict(self)
        view.pop("hash")
        return view


class TokenStore:
    """Tokens in a JSON file: atomic rewrites under an exclusive lock, mode 0600."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._cache: tuple[tuple[int, int], dict[str, ApiToken]] | None = None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> dict[str, ApiToken]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return {}
        key = (stat.st_mtime_ns, stat.st_size)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        raw = json.loads(self.path.read_text() or "{}")
        tokens = {t["id"]: ApiToken(**t) for t in raw.get("tokens", [])}
        self._cache = (key, tokens)
        return tokens

    def _write(self, tokens: dict[str, ApiToken]) -> None:
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"tokens": [asdict(t) for t in tokens.values()]}, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        self._cache = None

    def create(self, name: str, datasets: Iterable[str]) -> tuple[ApiToken, str]:
        """Store a new token; returns it and the full secret (shown once, never stored)."""
        from connectome_query.schema.model import check_dataset_name

        names = sorted(set(datasets))
        if not names:
            raise ValueError("give at least one dataset (or '*' for all)")
        for d in names:
            if d != ALL_DATASETS:
                check_dataset_name(d)
        with self._locked():
            tokens = dict(self._read())
            token_id = secrets.token_hex(4)
            while token_id in tokens:
                token_id = secrets.token_hex(4)
            secret = secrets.token_urlsafe(32)
            token = ApiToken(id=token_id, hash=_hash(secret), name=name, datasets=names,
                             createdAt=datetime.now(UTC).isoformat(timespec="seconds"))
            tokens[token_id] = token
            self._write(tokens)
        return token, f"cq_{token_id}_{secret}"

    def all(self) -> list[ApiToken]:
        """Every token, oldest first."""
        return sorted(self._read().values(), key=lambda t: t.createdAt)

    def revoke(self, id_or_name: str) -> list[ApiToken]:
        """Revoke the token with this id (or every token with this name); returns them."""
        with self._locked():
            self._cache = None
            tokens = dict(self._read())
            hits = [t for t in tokens.values() if id_or_name in (t.id, t.name) and not t.revoked]
            for t in hits:
                tokens[t.id] = ApiToken(**{**asdict(t), "revoked": True})
            if hits:
                self._write(tokens)
        return hits

    def verify(self, presented: str) -> ApiToken:
        """The live token matching `presented`, or AuthError (one message for every failure)."""
        match = TOKEN_RE.match(presented)
        token = self._read().get(match.group(1)) if match else None
        expected = token.hash if token else _hash("")
        given = _hash(match.group(2)) if match else _hash("x")
        if not hmac.compare_digest(expected, given) or token is None or token.revoked:
            raise AuthError("invalid or revoked API token")
        return token


@dataclass(frozen=True)
class Principal:
    """Who is asking: a token's id and datasets, or anonymous (public datasets only)."""

    token_id: str | None
    datasets: frozenset[str]
    """Datasets granted explicitly; `*` grants all."""

    @property
    def reads_all(self) -> bool:
        return ALL_DATASETS in self.datasets

    @property
    def rate_key(self) -> str | None:
        return f"token:{self.token_id}" if self.token_id else None


OPEN = Principal(token_id=None, datasets=frozenset({ALL_DATASETS}))
"""Auth off: everything is readable."""
ANONYMOUS = Principal(token_id=None, datasets=frozenset())


@dataclass
class AuthConfig:
    """How the API authenticates and limits requests."""

    required: bool = False
    tokens_file: Path | None = None
    rate: float | None = None
    """Requests per second per token (per client address when anonymous); None: no limit."""
    burst: int = DEFAULT_BURST

    @classmethod
    def from_env(cls) -> AuthConfig:
        """`CONNECTOME_AUTH` (off|required), `CONNECTOME_RATE_LIMIT` (req/s, 0 = off),
        `CONNECTOME_RATE_BURST`. With auth required the limit defaults to 20/s, burst 40."""
        env = from_env(ApiSettings)
        required = env.auth == "required"
        rate = env.rate_limit if env.rate_limit is not None else (
            DEFAULT_RATE if required else None)
        return cls(required=required, rate=rate or None, burst=env.rate_burst)


@dataclass
class AuthState:
    """What the running app keeps: config, token store, limiter, cached public datasets."""

    config: AuthConfig
    store: TokenStore
    limiter: TokenBucketLimiter | None
    _public: tuple[float, frozenset[str]] | None = field(default=None)

    @classmethod
    def build(cls, config: AuthConfig) -> AuthState:
        store = TokenStore(config.tokens_file or default_tokens_file())
        limiter = TokenBucketLimiter(config.rate, config.burst) if config.rate else None
        return cls(config=config, store=store, limiter=limiter)

    def authenticate(self, authorization: str | None) -> Principal:
        """Principal for an `Authorization` header; AuthError for a bad credential."""
        if not self.config.required:
            return OPEN
        if not authorization:
            return ANONYMOUS
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthError("invalid or revoked API token")
        token = self.store.verify(value.strip())
        return Principal(token_id=token.id, datasets=frozenset(token.datasets))

    async def public_datasets(self, driver: neo4j.AsyncDriver, database: str) -> frozenset[str]:
        """Datasets whose Meta has `public = true` (cached a few seconds)."""
        now = time.monotonic()
        if self._public is not None and now - self._public[0] < PUBLIC_CACHE_S:
            return self._public[1]
        rows = await read(driver, catalog.PUBLIC, {}, database=database)
        names = frozenset(r["d"] for r in rows)
        self._public = (now, names)
        return names


_ENV_STATE: AuthState | None = None


def state_for(conn: HTTPConnection | None) -> AuthState:
    """The app's AuthState, or one built from the environment (schema run without the app)."""
    global _ENV_STATE
    if conn is not None:
        st = getattr(conn.app.state, "connectome_auth", None)
        if isinstance(st, AuthState):
            return st
    if _ENV_STATE is None:
        _ENV_STATE = AuthState.build(AuthConfig.from_env())
    return _ENV_STATE


def principal_for(conn: HTTPConnection | None) -> Principal:
    """Who is asking: the principal the guard attached to this request, or, for a request the
    guard did not see (an app mounted without it), the one its Authorization header names
    (AuthError for a bad credential)."""
    st = state_for(conn)
    if not st.config.required:
        return OPEN
    if conn is None:
        return ANONYMOUS
    found = getattr(conn.state, "principal", None)
    if isinstance(found, Principal):
        return found
    principal = st.authenticate(conn.headers.get("authorization"))
    conn.state.principal = principal
    return principal


def _unpack(caller: Any) -> tuple[HTTPConnection | None, Any]:
    """(request, ApiContext-or-None) from a Strawberry Info or a Starlette request."""
    if isinstance(caller, HTTPConnection):
        return caller, None
    context = caller.context
    request = getattr(context, "request", None)
    return (request if isinstance(request, HTTPConnection) else None), context


def not_readable(dataset: str) -> QueryError:
    """The one message for 'no such dataset' and 'not yours': existence does not leak."""
    return QueryError(f"unknown dataset {dataset!r}, or these credentials may not read it",
                      code="unknown_dataset")


async def can_read(caller: Any, dataset: str, *, driver: neo4j.AsyncDriver | None = None,
                   database: str | None = None) -> bool:
    """Whether the caller may read `dataset`: the one place where access is decided, for
    GraphQL resolvers (`caller` is their `Info`) and plain HTTP routes (a Starlette request).

    Auth off: yes. Otherwise yes when the caller's token grants the dataset (or `*`), or the
    dataset is public. `dataset = ALL_DATASETS` asks whether the caller may read every dataset
    (the read-only Cypher endpoint). The public datasets are read with `driver` (default: the
    GraphQL context's). AuthError when the request carries a bad credential.
    """
    request, context = _unpack(caller)
    principal = principal_for(request)
    if principal.reads_all or dataset in principal.datasets:
        return True
    if dataset == ALL_DATASETS:
        return False
    drv = driver or getattr(context, "driver", None)
    if drv is None:
        return False
    db = database or str(getattr(context, "database", "neo4j"))
    return dataset in await state_for(request).public_datasets(drv, db)


async def require_read(caller: Any, dataset: str, *, driver: neo4j.AsyncDriver | None = None,
                       database: str | None = None) -> None:
    """`can_read`, raising `not_readable` (a QueryError) when the answer is no. Call it in every
    resolver and route that reads a dataset."""
    if not await can_read(caller, dataset, driver=driver, database=database):
        raise not_readable(dataset)


async def readable(caller: Any, datasets: Iterable[str]) -> list[str]:
    """The subset of `datasets` the caller may read, in order."""
    return [d for d in datasets if await can_read(caller, d)]
