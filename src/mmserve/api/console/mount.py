"""The web console: static files (plain ES modules, no build step) served at ``/console``.

The page shell and its assets need no key (they hold no data); everything they show comes from
the API with the key the user typed, kept in the tab's sessionStorage. A strict
Content-Security-Policy keeps scripts to these files, so nothing injected can read that key.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

PREFIX = "/console"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob: data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)


def static_dir() -> Path:
    return Path(str(resources.files("mmserve.api.console").joinpath("static")))


class ConsoleFiles(StaticFiles):
    """StaticFiles plus the console's security headers; revalidated on each load (ETag): upgrades show at once."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.setdefault("Cache-Control", "no-cache")
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response


def mount_console(app: FastAPI) -> None:
    @app.api_route(PREFIX, methods=["GET", "HEAD"], include_in_schema=False)
    async def console_root() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/")  # relative asset and API paths resolve from the slash

    files = ConsoleFiles(directory=static_dir(), html=True)
    app.mount(
        PREFIX, GZipMiddleware(files, minimum_size=512), name="console"
    )  # only the console: never the API streams
