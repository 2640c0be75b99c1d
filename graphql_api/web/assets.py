"""Browser assets from this server: GraphiQL (Strawberry's page with its CDN addresses replaced
by our vendored copies of the same files, SRI hashes kept), Swagger UI at /docs, and the
Neuroglancer viewer (`neuroglancer_client`).

The vendored files are npm releases copied by `static/vendor/update.sh`; licences lie beside them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from starlette.staticfiles import StaticFiles
from strawberry.fastapi import GraphQLRouter

from connectome_query.graphql_api.web import neuroglancer_client

STATIC = Path(__file__).resolve().parent / "static"
VENDOR_URL = "/static/vendor"

UNPKG_TO_VENDOR = {
    "https://unpkg.com/react@18.2.0/umd/react.production.min.js":
        "react/react.production.min.js",
    "https://unpkg.com/react-dom@18.2.0/umd/react-dom.production.min.js":
        "react-dom/react-dom.production.min.js",
    "https://unpkg.com/js-cookie@3.0.5/dist/js.cookie.min.js": "js-cookie/js.cookie.min.js",
    "https://unpkg.com/graphiql@3.8.3/graphiql.min.css": "graphiql/graphiql.min.css",
    "https://unpkg.com/graphiql@3.8.3/graphiql.min.js": "graphiql/graphiql.min.js",
    "https://unpkg.com/@graphiql/plugin-explorer@1.0.2/dist/style.css":
        "graphiql-plugin-explorer/style.css",
    "https://unpkg.com/@graphiql/plugin-explorer@1.0.2/dist/index.umd.js":
        "graphiql-plugin-explorer/index.umd.js",
}
"""Each address in Strawberry's GraphiQL page and the vendored copy of the same file."""

_EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["'](https?:)?//""")


def local_graphiql(html: str) -> str:
    """Strawberry's GraphiQL page with every CDN address pointing at our copy; the editor also
    opens a `?query=` link (Strawberry's page reads only `?q=`). ValueError if an external
    address is left (a Strawberry upgrade changed its page: rerun update.sh with its versions)."""
    for url, local in UNPKG_TO_VENDOR.items():
        html = html.replace(url, f"{VENDOR_URL}/{local}")
    html = html.replace("parameters.q || EXAMPLE_QUERY",
                        "parameters.q || parameters.query || EXAMPLE_QUERY")
    if _EXTERNAL.search(html):
        raise ValueError("GraphiQL page still loads an external address: "
                         f"{_EXTERNAL.search(html)!r}; update UNPKG_TO_VENDOR")
    return html


class LocalGraphQLRouter(GraphQLRouter[Any, Any]):
    """Strawberry's router with GraphiQL from local assets. A browser (its Accept names
    text/html) gets the editor at /graphql?query=..., with the query filled in; clients that
    accept JSON get the answer, as before."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.local_ide_html = local_graphiql(self.graphql_ide_html)

    async def render_graphql_ide(self, request: Any) -> HTMLResponse:
        return HTMLResponse(self.local_ide_html)

    def should_render_graphql_ide(self, request: Any) -> bool:
        if request.method != "GET":
            return False
        accept = request.headers.get("accept", "")
        if "text/html" in accept:
            return True
        return bool(super().should_render_graphql_ide(request))


def install(app: FastAPI) -> None:
    """Serve /static (vendored assets), /docs (Swagger UI) and /neuroglancer/ (the viewer).
    The app must be built with `docs_url=None, redoc_url=None`."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(neuroglancer_client.router())

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        return FileResponse(STATIC / "vendor" / "swagger-ui" / "favicon-32x32.png",
                            media_type="image/png")

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} - API",
            swagger_js_url=f"{VENDOR_URL}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{VENDOR_URL}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{VENDOR_URL}/swagger-ui/favicon-32x32.png")
