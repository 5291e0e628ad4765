"""The /demo page: a small browser client of the realtime hub, served by the web process itself.

Everything it needs (HTML, JavaScript, CSS) lives in hub/static and is served from here, so the page
works offline and its Content-Security-Policy can allow this origin and nothing else."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).resolve().parent / "static"

# The only files served: a fixed list, so no request can name anything else in the directory.
# gigwire-client.js is the TypeScript SDK (clients/js) as built by its scripts/build.mjs, which
# demo.js imports as an ES module.
ASSETS: dict[str, str] = {
    "demo.js": "text/javascript",
    "gigwire-client.js": "text/javascript",
    "demo.css": "text/css",
}


def _security_headers(request: web.Request) -> dict[str, str]:
    # The page talks to this host only: its REST API over fetch and /ws over WebSocket.
    host = request.host
    csp = (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self' ws://{host} wss://{host}; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    )
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }


def _files() -> dict[str, bytes]:
    # Read once when the app is built: a few kilobytes, and no disk reads on the event loop later.
    return {name: (STATIC_DIR / name).read_bytes() for name in ("demo.html", *ASSETS)}


def setup_demo(app: web.Application) -> None:
    """Add GET /demo (the page), GET /demo/assets/{name} (its script and styles; 404 for any
    other name) and GET /, a redirect to /demo (a new user opening the bare address finds the page)
    to `app`."""
    files = _files()

    async def root(request: web.Request) -> web.Response:
        raise web.HTTPFound("/demo")

    async def demo_page(request: web.Request) -> web.Response:
        return web.Response(
            body=files["demo.html"],
            content_type="text/html",
            charset="utf-8",
            headers=_security_headers(request),
        )

    async def demo_asset(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        content_type = ASSETS.get(name)
        if content_type is None:
            raise web.HTTPNotFound(text=f"no demo asset {name!r}")
        return web.Response(
            body=files[name],
            content_type=content_type,
            charset="utf-8",
            headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"},
        )

    app.router.add_get("/", root)
    app.router.add_get("/demo", demo_page)
    app.router.add_get("/demo/assets/{name}", demo_asset)
