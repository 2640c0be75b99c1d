"""The Neuroglancer viewer from the `neuroglancer` PyPI package, served by this API so links
work without internet: /neuroglancer/v/{token}/ (see `viewer` for the token).

That package builds the viewer for its Python server: the page must sit under `/v/{token}/`,
and it opens an event stream and posts its state to endpoints beside it. Our event stream sends
the state the token carries once (again only to a client that has not received it), then stays
open with nothing more to say; posted states are acknowledged and dropped. A link with a state
in its fragment (`#!{...}`, any token) works too; the viewer then ignores the stream.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse

from connectome_query.graphql_api.web.viewer import token_state

TOKEN = "offline"
"""The token in our viewer links (any token works)."""
MIME = {".css": "text/css", ".js": "application/javascript", ".html": "text/html",
        ".map": "application/json", ".wasm": "application/wasm"}
_NAME = re.compile(r"^[a-z0-9][a-zA-Z0-9_\-.]*\.(?:js|map|css|wasm|html)$")
KEEPALIVE_S = 15.0
GENERATION = "1"
"""The one generation of a link's state: a client reporting it already holds the state."""


def state_event(token: str, held: str | None) -> str:
    """The event giving the viewer the state inside `token` (viewer key 's'), or a comment when
    the token carries none or the client already holds it (`held`, its last generation)."""
    state = token_state(token)
    if state is None or held == GENERATION:
        return ": no state to send\n\n"
    return "data: " + json.dumps({"k": "s", "s": state, "g": GENERATION}) + "\n\n"


def client_folder() -> Path:
    """Neuroglancer's built client inside the installed `neuroglancer` package."""
    folder = Path(str(resources.files("neuroglancer") / "static" / "client"))
    if not (folder / "index.html").is_file():
        raise RuntimeError(f"the neuroglancer package has no built client in {folder}")
    return folder


def router() -> APIRouter:
    api = APIRouter(prefix="/neuroglancer", include_in_schema=False)
    folder = client_folder()

    @api.get("/v/{token}/{name:path}")
    async def client(token: str, name: str) -> FileResponse:
        name = name or "index.html"
        if not _NAME.match(name) or not (folder / name).is_file():
            raise HTTPException(404, f"no viewer file {name!r}")
        return FileResponse(folder / name, media_type=MIME[Path(name).suffix])

    @api.get("/events/{token}")
    async def events(request: Request, token: str) -> StreamingResponse:
        async def idle() -> AsyncIterator[str]:
            yield state_event(token, request.query_params.get("gs"))
            while not await request.is_disconnected():
                await asyncio.sleep(KEEPALIVE_S)
                yield ": keep-alive\n\n"

        return StreamingResponse(idle(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    @api.post("/state/{token}")
    async def state(token: str) -> JSONResponse:
        return JSONResponse({"g": GENERATION})

    @api.post("/action/{token}")
    @api.post("/volume_response/{token}/{rest:path}")
    async def ignored(token: str, rest: str = "") -> Response:
        return Response(status_code=204)

    return api
