"""The /demo page is served by the web process, complete and self-contained."""

from __future__ import annotations

import re
from typing import Any

from hub.demo import ASSETS, STATIC_DIR


async def test_demo_page_and_assets_are_served(client: Any) -> None:
    resp = await client.get("/demo")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    html = await resp.text()
    assert "/demo/assets/demo.js" in html
    assert "/demo/assets/demo.css" in html
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "default-src 'none'" in csp
    for name, content_type in ASSETS.items():
        asset = await client.get(f"/demo/assets/{name}")
        assert asset.status == 200, name
        assert asset.content_type == content_type
        assert await asset.read() == (STATIC_DIR / name).read_bytes()


async def test_the_bare_address_redirects_to_the_demo(client: Any) -> None:
    for method in ("GET", "HEAD"):
        resp = await client.request(method, "/", allow_redirects=False)
        assert resp.status == 302, method
        assert resp.headers["Location"] == "/demo"
    followed = await client.get("/")
    assert followed.status == 200 and followed.url.path == "/demo"


async def test_only_listed_assets_are_served(client: Any) -> None:
    for name in ("demo.html", "nothing.js", "..%2Fdemo.py", "%2e%2e%2f__init__.py"):
        resp = await client.get(f"/demo/assets/{name}")
        assert resp.status == 404, name


def test_page_loads_nothing_from_outside() -> None:
    # Offline by design: no CDN, no external fonts or scripts, in any of the page's files.
    for path in STATIC_DIR.iterdir():
        text = path.read_text()
        assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", text), path.name
        assert not re.search(r"fetch\(\s*[\"'`]https?:", text), path.name
        assert "import(" not in text, path.name


def test_page_is_built_on_the_sdk() -> None:
    # The page speaks the protocol through the SDK's bundle (clients/js), which it imports.
    js = (STATIC_DIR / "demo.js").read_text()
    assert 'from "./gigwire-client.js"' in js
    assert "new GigwireClient(" in js
    assert "new WebSocket(" not in js
    sdk = (STATIC_DIR / "gigwire-client.js").read_text()
    for event in (
        "AUTHENTICATE",
        "AUTHENTICATED",
        "SUBSCRIBE_CHAT",
        "UNSUBSCRIBE_CHAT",
        "CHAT_MESSAGE",
        "MESSAGE_READ",
        "TYPING_START",
        "TYPING_STOP",
        "ORDER_UPDATE",
        "SESSION_EXPIRING",
        "PING",
    ):
        assert f'"{event}"' in sdk, event
    assert "sinceSeq" in sdk
    assert "sinceFeedSeq" in sdk
    assert "clientMsgId" in sdk
