"""The media store contract (hub/storage.py), the same tests on both backends: local disk and an
S3-compatible server (moto, a real HTTP server speaking S3). Then the whole route through each:
upload, read back through Media.url, delete."""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiohttp import web

from hub.settings import Settings
from hub.storages import open_storage
from tests.factories import make_user
from tests.media.conftest import fetch, image_bytes, uploaded


async def test_put_get_delete_round_trip(settings: Settings, store_url: str) -> None:
    store = open_storage(settings, store_url)
    key = str(uuid.uuid4())
    try:
        assert await store.get(key) is None
        await store.put(key, b"first", "application/pdf")
        await store.put(key, b"second bytes", "application/pdf")  # replaces
        assert await store.get(key) == b"second bytes"
        other = str(uuid.uuid4())
        await store.put(other, b"other", "image/png")
        await store.delete(key)
        assert await store.get(key) is None
        await store.delete(key)  # twice is fine
        assert await store.get(other) == b"other"
    finally:
        await store.close()


async def test_signed_url_serves_the_bytes_until_it_expires(settings: Settings, store_url: str) -> None:
    store = open_storage(settings, store_url)
    key = str(uuid.uuid4())
    try:
        await store.put(key, b"\x89PNG fake", "image/png")
        url = await store.signed_url(
            key, int(time.time()) + 60, base_url="http://gigwire.test", content_type="image/png"
        )
        assert url.startswith("http")
        if store.direct:  # the store's own link: fetch it as a client would
            status, body, headers = await fetch(None, url)
            assert (status, body, headers["Content-Type"]) == (200, b"\x89PNG fake", "image/png")
            # moto does not enforce a presigned link's expiry (S3 does): check what the link asks.
            query = parse_qs(urlsplit(url).query)
            assert 55 <= int(query["X-Amz-Expires"][0]) <= 60 and query["X-Amz-Signature"][0]
        else:  # gigwire's link, with an expiry and a signature
            assert url.startswith(f"http://gigwire.test/api/media/{key}/content?expires=")
            assert "&sig=" in url
    finally:
        await store.close()


async def test_upload_read_delete_through_the_api(
    aiohttp_client: Any, media_app: web.Application, settings: Settings, pool: Any, store_url: str
) -> None:
    client = await aiohttp_client(media_app)
    user = await make_user(pool, settings)
    png = image_bytes()
    media = await uploaded(client, user, "chat_attachment", png)
    assert media["kind"] == "chat_attachment" and media["contentType"] == "image/png"
    assert (media["width"], media["height"]) == (40, 30)
    url = media["url"]
    if url.startswith("http://127.0.0.1:" + str(client.port)):  # gigwire serves it (local store)
        resp = await client.get(url.split(str(client.port), 1)[1])
        status, body = resp.status, await resp.read()
    else:
        status, body, _ = await fetch(client, url)
    assert status == 200 and body[:8] == b"\x89PNG\r\n\x1a\n" and len(body) == media["size"]
    resp = await client.delete(f"/api/media/{media['id']}", headers=user.headers)
    assert resp.status == 200, await resp.text()
    store = open_storage(settings, store_url)
    try:
        assert await store.get(media["id"]) is None  # the bytes are gone from the store too
    finally:
        await store.close()
    resp = await client.get(f"/api/media/{media['id']}", headers=user.headers)
    assert resp.status == 404


async def test_a_public_avatar_has_a_stable_link_on_every_store(
    aiohttp_client: Any, media_app: web.Application, settings: Settings, pool: Any
) -> None:
    """/api/media/{id}/content of a public media: the bytes from gigwire (local), or a redirect to
    the store's own short-lived link (S3), followed here as a browser would."""
    client = await aiohttp_client(media_app)
    user = await make_user(pool, settings)
    media = await uploaded(client, user, "avatar")
    resp = await client.get(f"/api/media/{media['id']}/content", allow_redirects=False)
    if resp.status == 302:
        status, body, headers = await fetch(client, resp.headers["Location"])
        assert headers["Content-Type"] == "image/png"
    else:
        status, body = resp.status, await resp.read()
    assert status == 200 and body.startswith(b"\x89PNG") and len(body) == media["size"]
