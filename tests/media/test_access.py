"""Who may read a media and for how long: signed links expire and cannot be altered; ID documents
only for their owner and admins; public kinds for anyone; deleting is the owner's alone. Also the
avatar and ID-document routes of the profile."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg

from hub.media_sign import signature
from hub.settings import Settings
from tests.factories import make_user
from tests.media.conftest import PDF_BYTES, uploaded


def _path(client: Any, url: str) -> str:
    """A link of gigwire's own, as a path on the test server."""
    parts = urlsplit(url)
    assert parts.port == client.port, url
    return parts.path + ("?" + parts.query if parts.query else "")


async def _status(client: Any, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    resp = await client.get(path, headers=headers or {})
    body = await resp.json() if resp.content_type == "application/json" else await resp.read()
    return resp.status, body


async def test_a_signed_link_works_until_it_expires_and_cannot_be_altered(
    client: Any, pool: asyncpg.Pool, settings: Settings
) -> None:
    owner = await make_user(pool, settings)
    doc = await uploaded(client, owner, "id_document", PDF_BYTES)
    other = await uploaded(client, owner, "id_document", PDF_BYTES)
    path = _path(client, doc["url"])
    expires = int(parse_qs(urlsplit(path).query)["expires"][0])
    sig = parse_qs(urlsplit(path).query)["sig"][0]
    assert abs(expires * 1000 - doc["urlExpiresAt"]) < 1000
    assert expires - time.time() > settings.media_url_ttl_s - 60
    status, body = await _status(client, path)  # no token needed: the link is the permission
    assert (status, body) == (200, PDF_BYTES)
    base = f"/api/media/{doc['id']}/content"
    flipped = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    past = int(time.time()) - 5
    for bad in [
        f"{base}?expires={expires + 1}&sig={sig}",  # a later expiry
        f"{base}?expires={expires}&sig={flipped}",  # a forged signature
        f"/api/media/{other['id']}/content?expires={expires}&sig={sig}",  # another media
        f"{base}?expires={past}&sig={signature(settings, doc['id'], past)}",  # rightly signed, expired
        f"{base}?expires={expires}",  # half a link
        f"{base}?sig={sig}",
    ]:
        status, body = await _status(client, bad)
        assert status == 403, (bad, body)
        assert body["error"]["code"] == "forbidden"
    status, body = await _status(client, f"{base}?expires=soon&sig={sig}")
    assert status == 400 and body["error"]["details"]["parameter"] == "expires"
    # Without a link, an ID document is not there at all.
    assert (await _status(client, base))[0] == 404
    assert (await _status(client, base, owner.headers))[0] == 404


async def test_id_documents_are_for_their_owner_and_admins_only(
    client: Any, pool: asyncpg.Pool, settings: Settings
) -> None:
    owner = await make_user(pool, settings)
    stranger = await make_user(pool, settings)
    admin = await make_user(pool, settings, roles=("client", "admin"))
    doc = await uploaded(client, owner, "id_document", PDF_BYTES)
    path = f"/api/media/{doc['id']}"
    for headers in ({}, stranger.headers):
        status, body = await _status(client, path, headers)
        assert status == 404 and body["error"]["code"] == "not_found"
    for user in (owner, admin):
        status, body = await _status(client, path, user.headers)
        assert status == 200, body
        assert body["data"]["id"] == doc["id"] and body["data"]["kind"] == "id_document"
        status, content = await _status(client, _path(client, body["data"]["url"]))
        assert (status, content) == (200, PDF_BYTES)
    # A stranger cannot delete it, nor learn it exists.
    resp = await client.delete(path, headers=stranger.headers)
    assert resp.status == 404


async def test_public_kinds_are_readable_by_anyone_without_a_link(
    client: Any, pool: asyncpg.Pool, settings: Settings
) -> None:
    owner = await make_user(pool, settings)
    stranger = await make_user(pool, settings)
    for kind in ("avatar", "gig_attachment"):
        media = await uploaded(client, owner, kind)
        status, body = await _status(client, f"/api/media/{media['id']}")
        assert status == 200 and body["data"]["id"] == media["id"]
        resp = await client.get(f"/api/media/{media['id']}/content")
        assert resp.status == 200 and (await resp.read()).startswith(b"\x89PNG")
        assert "public" in resp.headers["Cache-Control"]
        # Anyone may read it; only the owner may delete it.
        resp = await client.delete(f"/api/media/{media['id']}", headers=stranger.headers)
        assert resp.status == 403 and (await resp.json())["error"]["code"] == "forbidden"
    chat = await uploaded(client, owner, "chat_attachment")
    assert (await _status(client, f"/api/media/{chat['id']}", stranger.headers))[0] == 404
    assert (await _status(client, f"/api/media/{chat['id']}/content"))[0] == 404


async def test_unknown_and_malformed_ids_are_404_and_strangers_401(
    client: Any, pool: asyncpg.Pool, settings: Settings
) -> None:
    user = await make_user(pool, settings)
    for path in ("/api/media/00000000-0000-4000-8000-000000000000", "/api/media/nope"):
        assert (await _status(client, path, user.headers))[0] == 404
        assert (await _status(client, path + "/content"))[0] == 404
        resp = await client.delete(path, headers=user.headers)
        assert resp.status == 404
    resp = await client.delete("/api/media/00000000-0000-4000-8000-000000000000")
    assert resp.status == 401


async def test_the_owner_deletes_and_the_profile_link_goes_with_it(
    client: Any, pool: asyncpg.Pool, settings: Settings
) -> None:
    owner = await make_user(pool, settings)
    avatar = await uploaded(client, owner, "avatar")
    resp = await client.post("/api/users/me/avatar", json={"mediaId": avatar["id"]}, headers=owner.headers)
    profile = (await resp.json())["data"]
    assert resp.status == 200 and profile["avatarUrl"].endswith(f"/api/media/{avatar['id']}/content")
    resp = await client.get(_path(client, profile["avatarUrl"]))  # the stable public link
    assert resp.status == 200 and (await resp.read()).startswith(b"\x89PNG")
    resp = await client.delete(f"/api/media/{avatar['id']}", headers=owner.headers)
    assert resp.status == 200 and (await resp.json())["data"] == {"id": avatar["id"], "deleted": True}
    assert await pool.fetchval("SELECT avatar_url FROM users WHERE id = $1", owner.id) is None
    assert (await client.get(_path(client, profile["avatarUrl"]))).status == 404
    assert (await client.delete(f"/api/media/{avatar['id']}", headers=owner.headers)).status == 404


async def test_only_an_own_media_of_the_right_kind_becomes_the_avatar(
    client: Any, pool: asyncpg.Pool, settings: Settings
) -> None:
    owner = await make_user(pool, settings)
    other = await make_user(pool, settings)
    chat = await uploaded(client, owner, "chat_attachment")
    theirs = await uploaded(client, other, "avatar")
    for media_id in (chat["id"], theirs["id"], "00000000-0000-4000-8000-000000000000", "x"):
        resp = await client.post("/api/users/me/avatar", json={"mediaId": media_id}, headers=owner.headers)
        body = await resp.json()
        assert resp.status == 400, body
        assert "mediaId" in body["error"]["details"]["fields"]
    assert await pool.fetchval("SELECT avatar_url FROM users WHERE id = $1", owner.id) is None
    resp = await client.post("/api/users/me/avatar", json={"mediaId": theirs["id"]})
    assert resp.status == 401


async def test_an_uploaded_id_document_is_submitted_and_stays_private(
    client: Any, pool: asyncpg.Pool, settings: Settings
) -> None:
    owner = await make_user(pool, settings, id_verified=True)
    stranger = await make_user(pool, settings)
    admin = await make_user(pool, settings, roles=("admin", "client"))
    doc = await uploaded(client, owner, "id_document", PDF_BYTES)
    resp = await client.post("/api/users/me/id-document", json={"mediaId": doc["id"]}, headers=owner.headers)
    profile = (await resp.json())["data"]
    assert resp.status == 200 and profile["idVerified"] is False
    path = _path(client, profile["idDocumentUrl"])
    assert path == f"/api/media/{doc['id']}"
    assert (await _status(client, path))[0] == 404
    assert (await _status(client, path, stranger.headers))[0] == 404
    status, body = await _status(client, path, admin.headers)
    assert status == 200 and (await _status(client, _path(client, body["data"]["url"])))[1] == PDF_BYTES
    # An avatar is not an ID document.
    avatar = await uploaded(client, owner, "avatar")
    resp = await client.post(
        "/api/users/me/id-document", json={"mediaId": avatar["id"]}, headers=owner.headers
    )
    assert resp.status == 400
