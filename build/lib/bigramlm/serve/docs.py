"""``/docs`` without a CDN: FastAPI's default page loads Swagger UI from jsDelivr, blank offline.

With the ``fastapi-offline`` package installed (it ships Swagger UI 5's files), ``/docs``
is Swagger UI served from ``/docs-assets``. Without it, ``/docs`` is a small local page
that lists the routes and links the schema at ``/openapi.json``.
"""

from __future__ import annotations

import html
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

DOCS_URL = "/docs"
DOCS_ASSETS_URL = "/docs-assets"


def make_fastapi(**kwargs: Any) -> FastAPI:
    """A FastAPI app whose ``/docs`` needs nothing from outside this server."""
    try:
        from fastapi_offline import FastAPIOffline
    except ImportError:
        app = FastAPI(docs_url=None, redoc_url=None, **kwargs)
        app.add_api_route(DOCS_URL, _route_list, methods=["GET"], include_in_schema=False, response_class=HTMLResponse)
        return app
    return FastAPIOffline(docs_url=DOCS_URL, redoc_url=None, static_url=DOCS_ASSETS_URL,
                          favicon_url=f"{DOCS_ASSETS_URL}/favicon.png", **kwargs)


def _route_list(request: Request) -> HTMLResponse:
    schema = request.app.openapi()
    rows = []
    for path, operations in schema.get("paths", {}).items():
        for method, op in operations.items():
            summary = op.get("summary") or ""
            rows.append(f"<li><code>{html.escape(method.upper())} {html.escape(path)}</code> {html.escape(summary)}</li>")
    title = html.escape(schema.get("info", {}).get("title", "API"))
    page = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{title}</title></head><body>"
            f"<h1>{title}</h1><p>The OpenAPI schema: <a href=\"/openapi.json\">/openapi.json</a>. "
            "(Install <code>fastapi-offline</code> for the interactive Swagger UI here.)</p>"
            f"<ul>{''.join(rows)}</ul></body></html>")
    return HTMLResponse(page)
