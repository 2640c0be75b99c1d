"""One error shape for every HTTP answer that is an error: `{"error": message, "code": code}`
(neuPrint's `error`, plus a stable code), beside the keys older clients read (`errors` on the
GraphQL-style routes, `detail` on export)."""

from __future__ import annotations

from typing import Any

CODES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
         405: "method_not_allowed", 408: "timeout", 409: "conflict", 413: "too_large",
         429: "rate_limited", 500: "internal", 503: "unavailable", 504: "timeout"}
"""The code an error gets from its HTTP status when its route names none."""


def code_for(status: int) -> str:
    return CODES.get(status, "client_error" if status < 500 else "server_error")


def error_fields(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    """`error` and `code` of an error body."""
    return {"error": message, "code": code or code_for(status)}
