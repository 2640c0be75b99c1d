"""HTTP guard for the API: body size, authentication (401), per-token rate limit (429).

It runs before GraphQL and the Cypher endpoint, attaches the caller's `Principal` to
`request.state.principal`, and answers failures with a GraphQL-shaped JSON error that names no
internals.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from starlette.middleware.base import BaseHTTPMiddleware, DispatchFunction
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from connectome_query.graphdb.settings import ApiSettings, from_env
from connectome_query.graphql_api.auth import AuthConfig, AuthError, AuthState

MAX_BODY_BYTES = 1_000_000
GUARDED_PREFIXES = ("/graphql", "/api/")


def error_response(status: int, message: str, headers: dict[str, str] | None = None,
                   ) -> JSONResponse:
    """`{"errors": [{"message": ...}]}` with an HTTP status."""
    return JSONResponse({"errors": [{"message": message}]}, status_code=status, headers=headers)


def _json_object_problem(body: bytes) -> str | None:
    """Why a GraphQL POST body is unusable (not UTF-8 JSON, not an object), or None.

    Strawberry answers such bodies with an internal error (500); we answer 400.
    """
    try:
        parsed = json.loads(body)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return "the body is not valid JSON (UTF-8)"
    if not isinstance(parsed, dict):
        return 'the body must be a JSON object like {"query": "...", "variables": {...}}'
    return None


def install(app: FastAPI, config: AuthConfig) -> AuthState:
    """Attach the auth state to `app` and add the guard middleware."""
    state = AuthState.build(config)
    app.state.connectome_auth = state
    # Requests executing at once (per process); the rest wait their turn. Bounding this keeps
    # Neo4j from thrashing under a burst, so latency grows smoothly instead of timing out.
    max_concurrent = from_env(ApiSettings).max_concurrent
    slots = asyncio.Semaphore(max_concurrent) if max_concurrent > 0 else None

    async def guard(request: Request,
                    call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return error_response(413, f"request body over {MAX_BODY_BYTES} bytes")
        if (request.method == "POST" and request.url.path.startswith("/graphql")
                and request.headers.get("content-type", "").startswith("application/json")):
            problem = _json_object_problem(await request.body())
            if problem:
                return error_response(400, problem)
        try:
            principal = state.authenticate(request.headers.get("authorization"))
        except AuthError as exc:
            return error_response(401, str(exc), {"WWW-Authenticate": "Bearer"})
        request.state.principal = principal
        if state.limiter is not None:
            client = request.client.host if request.client else "unknown"
            key = principal.rate_key or f"addr:{client}"
            wait = state.limiter.acquire(key)
            if wait > 0:
                return error_response(
                    429, f"rate limit exceeded ({state.limiter.rate:g} requests/s); "
                    f"retry in {wait:.1f} s", {"Retry-After": str(max(1, round(wait)))})
        if slots is None:
            return await call_next(request)
        async with slots:
            return await call_next(request)

    app.add_middleware(_PathScoped, dispatch=guard)
    return state


class _PathScoped:
    """Runs `dispatch` (a BaseHTTPMiddleware) for the guarded paths only.

    Other paths, the streamed `/export` downloads among them, reach the app untouched:
    BaseHTTPMiddleware would turn a response that fails mid-stream into a normal ending,
    so a broken download could look complete.
    """

    def __init__(self, app: ASGIApp, dispatch: DispatchFunction) -> None:
        self.app = app
        self.guarded = BaseHTTPMiddleware(app, dispatch=dispatch)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope.get("path", "")).startswith(GUARDED_PREFIXES):
            await self.guarded(scope, receive, send)
        else:
            await self.app(scope, receive, send)
