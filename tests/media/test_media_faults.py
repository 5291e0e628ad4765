"""Media settings refused with one line, links built on PUBLIC_URL, a store that cannot be reached
(503, nothing recorded), and two deletions at once (one wins)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import asyncpg
import pytest

from hub.settings import Settings, SettingsError
from tests.factories import make_user
from tests.media.conftest import image_bytes, upload, uploaded


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MEDIA_STORAGE_URL", "ftp://x/y"),
        ("MEDIA_STORAGE_URL", "file://relative"),
        ("PUBLIC_URL", "api.example.com"),
        ("MEDIA_MAX_BYTES_AVATAR", "10"),
        ("MEDIA_MAX_PIXELS", "1000000000"),
        ("MEDIA_URL_TTL", "soon"),
    ],
)
def test_bad_media_settings_name_their_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({variable: value})
    assert caught.value.variable == variable


def test_media_settings_are_read() -> None:
    s = Settings.from_env(
        {
            "MEDIA_STORAGE_URL": "s3://bucket?endpoint=http://127.0.0.1:9000&region=x",
            "PUBLIC_URL": "https://api.example.com/",
            "MEDIA_MAX_BYTES_CHAT_ATTACHMENT": "2048",
            "MEDIA_URL_TTL": "10m",
        }
    )
    assert s.media_storage_url.startswith("s3://bucket") and s.public_url == "https://api.example.com"
    assert s.media_max_bytes["chat_attachment"] == 2048 and s.media_max_bytes["avatar"] == 5 * 1024 * 1024
    assert s.media_url_ttl_s == 600


async def test_links_start_with_public_url(
    aiohttp_client: Any, make_app: Any, pool: asyncpg.Pool, settings: Settings
) -> None:
    client = await aiohttp_client(make_app(public_url="https://media.example.com"))
    user = await make_user(pool, settings)
    media = await uploaded(client, user, "avatar")
    assert media["url"].startswith(f"https://media.example.com/api/media/{media['id']}/content?expires=")
    resp = await client.post("/api/users/me/avatar", json={"mediaId": media["id"]}, headers=user.headers)
    assert (await resp.json())["data"][
        "avatarUrl"
    ] == f"https://media.example.com/api/media/{media['id']}/content"


async def test_an_unreachable_store_is_503_and_records_nothing(
    aiohttp_client: Any, make_app: Any, pool: asyncpg.Pool, settings: Settings, s3_server: Any
) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = await aiohttp_client(make_app(media_storage_url=f"s3://b?endpoint=http://127.0.0.1:{port}"))
    user = await make_user(pool, settings)
    status, body = await upload(client, user, "avatar", image_bytes())
    assert status == 503 and body["error"]["code"] == "unavailable", body
    assert await pool.fetchval("SELECT count(*) FROM media WHERE owner_id = $1", user.id) == 0


async def test_two_deletions_at_once_one_wins(client: Any, pool: asyncpg.Pool, settings: Settings) -> None:
    user = await make_user(pool, settings)
    media = await uploaded(client, user, "chat_attachment")
    answers = await asyncio.gather(
        *(client.delete(f"/api/media/{media['id']}", headers=user.headers) for _ in range(4))
    )
    assert sorted(r.status for r in answers) == [200, 404, 404, 404]
