"""The API's gate (pure ASGI), in front of GraphQL, the Cypher endpoint and the export routes.

In order, before anything else runs: the body, counted as it arrives (chunked bodies too), must
fit `CONNECTOME_MAX_BODY_BYTES` (413); a JSON body must parse, and not nest too deeply (400);
then authentication (401, the caller's `Principal` goes to `request.state.principal`), the
per-token rate limit (429), and the concurrency caps: `CONNECTOME_MAX_CONCURRENT` requests at
once, of which at most `CONNECTOME_MAX_CONCURRENT_HEAVY` Cypher or export requests, so heavy
ones cannot take every slot. A GraphQL answer over `CONNECTOME_GRAPHQL_MAX_BYTES` is replaced by
a 413. Every refusal is one JSON error naming the problem, and one log line. Responses pass
through untouched otherwise, so a streamed export that fails mid-way still breaks the transfer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connectome_query.graphdb.settings import ApiSettings, from_env
from connectome_query.graphql_api.auth import AuthConfig, AuthError, AuthState
from connectome_query.graphql_api.error_shape import error_fields

MAX_BODY_BYTES = 1_000_000
"""Default of `CONNECTOME_MAX_BODY_BYTES`."""
GUARDED_PREFIXES = ("/graphql", "/api/", "/export", "/datasets")
HEAVY_PREFIXES = ("/api/custom", "/export", "/datasets")
"""Routes that may read a lot: they also need one of the heavy slots."""
PARSED_BODY = "connectome_json_body"
"""Where the guard leaves a parsed JSON body in the request state (parsed once)."""

log = logging.getLogger("connectome_query.api")


def error_response(status: int, message: str, headers: dict[str, str] | None = None,
                   ) -> JSONResponse:
    """`{"error": ..., "code": ..., "errors": [{"message": ...}]}` with an HTTP status."""
    return JSONResponse({**error_fields(status, message), "errors": [{"message": message}]},
                        status_code=status, headers=headers)


def parse_json(raw: bytes | str) -> tuple[Any, str | None]:
    """(value, None), or (None, why the text is not usable JSON)."""
    try:
        return json.loads(raw), None
    except RecursionError:
        return None, "the JSON is nested too deeply"
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return None, "the body is not valid JSON (UTF-8)"


async def json_body(request: Request) -> dict[str, Any] | JSONResponse:
    """The request's body as a JSON object, or a 400 saying why it is not one."""
    state = request.scope.get("state") or {}
    if PARSED_BODY in state:
        value, problem = state[PARSED_BODY], None
    else:
        value, problem = parse_json(await request.body())
    if problem:
        return error_response(400, problem)
    if not isinstance(value, dict):
        return error_response(400, "the body must be a JSON object")
    return value


class Refused(Exception):
    """A request the guard answers itself."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


@dataclass(frozen=True)
class Bounds:
    """The limits the guard enforces (from `ApiSettings`)."""

    max_body: int
    graphql_max_bytes: int

    @classmethod
    def from_env(cls) -> Bounds:
        env = from_env(ApiSettings)
        return cls(max_body=env.max_body_bytes, graphql_max_bytes=env.graphql_max_bytes)


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, counted as it arrives; Refused(413) past `limit` bytes (the rest
    is never read); None when the client went away."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Refused(413, f"request body over {limit:,} bytes (CONNECTOME_MAX_BODY_BYTES)")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def check_json(scope: Scope, headers: Headers, body: bytes) -> None:
    """Refused(400) for a JSON body (or GraphQL GET variables) that does not parse; a body that
    does is kept in the request state."""
    if scope["method"] == "GET":
        query = scope.get("query_string", b"").decode("latin-1")
        for key, value in parse_qsl(query):
            if key in ("variables", "extensions") and parse_json(value)[1]:
                raise Refused(400, f"{key}: {parse_json(value)[1]}")
        return
    if not body or "json" not in headers.get("content-type", "json"):
        return
    value, problem = parse_json(body)
    if problem:
        raise Refused(400, problem)
    if scope["path"].startswith("/graphql") and not isinstance(value, dict):
        raise Refused(400, 'the body must be a JSON object like {"query": "...", '
                      '"variables": {...}}')
    scope.setdefault("state", {})[PARSED_BODY] = value


class Guard:
    """The ASGI middleware; `install` adds it."""

    def __init__(self, app: ASGIApp, state: AuthState, bounds: Bounds, max_concurrent: int,
                 max_heavy: int) -> None:
        self.app = app
        self.auth = state
        self.bounds = bounds
        self.slots = asyncio.Semaphore(max_concurrent) if max_concurrent > 0 else None
        self.heavy = asyncio.Semaphore(max_heavy) if max_heavy > 0 else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or not path.startswith(GUARDED_PREFIXES):
            await self.app(scope, receive, send)
            return
        try:
            body = await self.admit(scope, receive)
        except Refused as refusal:
            await self.refuse(scope, send, refusal)
            return
        if body is None:
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async with self.slot(path.startswith(HEAVY_PREFIXES)):
            out = self.capped(scope, send) if path.startswith("/graphql") else send
            await self.app(scope, replay, out)

    async def admit(self, scope: Scope, receive: Receive) -> bytes | None:
        """Body, JSON, credentials and rate, in that order; Refused for the first that fails."""
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        limit = self.bounds.max_body
        if length is not None and (not length.isdigit() or int(length) > limit):
            raise Refused(413, f"request body over {limit:,} bytes (CONNECTOME_MAX_BODY_BYTES)")
        body = await read_body(receive, limit)
        if body is None:
            return None
        check_json(scope, headers, body)
        try:
            principal = self.auth.authenticate(headers.get("authorization"))
        except AuthError as exc:
            raise Refused(401, str(exc), {"WWW-Authenticate": "Bearer"}) from None
        scope.setdefault("state", {})["principal"] = principal
        if self.auth.limiter is not None:
            client = scope.get("client")
            key = principal.rate_key or f"addr:{client[0] if client else 'unknown'}"
            wait = self.auth.limiter.acquire(key)
            if wait > 0:
                raise Refused(429, f"rate limit exceeded ({self.auth.limiter.rate:g} requests/s);"
                              f" retry in {wait:.1f} s", {"Retry-After": str(max(1, round(wait)))})
        return body

    @contextlib.asynccontextmanager
    async def slot(self, heavy: bool) -> AsyncIterator[None]:
        """One of the request slots (and first a heavy one, for heavy routes)."""
        async with contextlib.AsyncExitStack() as stack:
            if heavy and self.heavy is not None:
                await stack.enter_async_context(self.heavy)
            if self.slots is not None:
                await stack.enter_async_context(self.slots)
            yield

    def capped(self, scope: Scope, send: Send) -> Send:
        """`send` that replaces an answer over `graphql_max_bytes` with a 413."""
        limit = self.bounds.graphql_max_bytes
        start: Message | None = None

        async def out(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if start is not None and message["type"] == "http.response.body":
                held, start = start, None
                if len(message.get("body", b"")) > limit and not message.get("more_body"):
                    await self.refuse(scope, send, Refused(
                        413, f"the answer is over {limit:,} bytes (CONNECTOME_GRAPHQL_MAX_BYTES);"
                        " ask for fewer items or page through them"))
                    return
                await send(held)
            await send(message)

        return out

    async def refuse(self, scope: Scope, send: Send, refusal: Refused) -> None:
        """Answer `refusal` and log it in one line."""
        client = scope.get("client")
        level = logging.WARNING if refusal.status in (401, 403) else logging.INFO
        log.log(level, "refused %d %s %s from %s: %s", refusal.status, scope.get("method"),
                scope.get("path"), client[0] if client else "?", refusal.message)
        if str(scope.get("path", "")).startswith("/export"):
            response = JSONResponse({"detail": refusal.message,
                                     **error_fields(refusal.status, refusal.message)},
                                    status_code=refusal.status,
                                    headers=refusal.headers)
        else:
            response = error_response(refusal.status, refusal.message, refusal.headers)

        async def nothing() -> Message:
            return {"type": "http.disconnect"}

        await response(scope, nothing, send)


def install(app: FastAPI, config: AuthConfig) -> AuthState:
    """Attach the auth state to `app` and put the guard in front of it."""
    state = AuthState.build(config)
    app.state.connectome_auth = state
    env = from_env(ApiSettings)
    app.add_middleware(Guard, state=state, bounds=Bounds.from_env(),
                       max_concurrent=env.max_concurrent, max_heavy=env.max_concurrent_heavy)
    return state
