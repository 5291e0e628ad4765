"""POST /api/media: the type is judged by the bytes, limits per kind answer 413 in the error shape,
images lose their metadata, decompression bombs and other files are refused, and nothing is kept
of a refused upload."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from PIL import Image

from hub.settings import Settings
from tests.factories import make_user
from tests.media.conftest import (
    ELF_BYTES,
    PDF_BYTES,
    form,
    image_bytes,
    jpeg_with_gps,
    png_bomb,
    upload,
    uploaded,
)


def _error(body: Any, code: str) -> dict[str, Any]:
    assert body["success"] is False and body["error"]["code"] == code, body
    error: dict[str, Any] = body["error"]
    return error


async def _stored(client: Any, user: Any, media: dict[str, Any]) -> bytes:
    resp = await client.get(media["url"].split(str(client.port), 1)[1])
    assert resp.status == 200, await resp.text()
    return await resp.read()


async def _count(pool: asyncpg.Pool, user_id: str) -> int:
    n: int = await pool.fetchval("SELECT count(*) FROM media WHERE owner_id = $1", user_id)
    return n


def _files(settings: Settings) -> list[Path]:
    root = Path(settings.data_dir) / "media"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def test_a_png_named_jpg_is_stored_as_the_png_it_is(
    client: Any, pool: asyncpg.Pool, settings: Settings
) -> None:
    user = await make_user(pool, settings)
    resp = await client.post(
        "/api/media",
        data=form("avatar", image_bytes("PNG"), filename="me.jpg", content_type="image/jpeg"),
        headers=user.headers,
    )
    body = await resp.json()
    assert resp.status == 201, body
    assert body["data"]["contentType"] == "image/png"
    stored = await _stored(client, user, body["data"])
    assert stored.startswith(b"\x89PNG")
    resp = await client.get(body["data"]["url"].split(str(client.port), 1)[1])
    assert resp.headers["Content-Type"] == "image/png" and resp.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("kind", "data", "name"),
    [
        ("avatar", ELF_BYTES, "cat.png"),  # an executable named .png
        ("chat_attachment", b"MZ\x90\x00" + b"\x00" * 100, "doc.pdf"),  # a Windows program
        ("gig_attachment", b"<html><script>alert(1)</script></html>", "x.jpg"),
        ("avatar", PDF_BYTES, "face.png"),  # PDFs are fine, but not as avatars
        ("id_document", image_bytes("GIF"), "id.png"),  # GIF is not kept
    ],
)
async def test_other_files_are_refused_422_and_nothing_is_kept(
    client: Any, pool: asyncpg.Pool, settings: Settings, kind: str, data: bytes, name: str
) -> None:
    user = await make_user(pool, settings)
    status, body = await upload(client, user, kind, data, name)
    assert status == 422, body
    error = _error(body, "unprocessable")
    assert error["details"]["reason"] == "unsupported_type"
    assert "image/png" in error["details"]["allowed"]
    assert await _count(pool, user.id) == 0 and _files(settings) == []


async def test_exif_and_gps_are_stripped_and_the_picture_turned_upright(
    client: Any, pool: asyncpg.Pool, settings: Settings
) -> None:
    user = await make_user(pool, settings)
    sent = jpeg_with_gps()
    assert Image.open(io.BytesIO(sent)).getexif().get_ifd(0x8825)  # the GPS is really there
    media = await uploaded(client, user, "chat_attachment", sent)
    assert media["contentType"] == "image/jpeg"
    assert (media["width"], media["height"]) == (20, 60)  # orientation 6 applied, then dropped
    stored = await _stored(client, user, media)
    image = Image.open(io.BytesIO(stored))
    assert image.size == (20, 60)
    assert not image.getexif() and "exif" not in image.info
    assert b"Exif" not in stored and b"SpyCam" not in stored


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "JPEG"])
async def test_text_metadata_is_stripped_from_every_format(
    client: Any, pool: asyncpg.Pool, settings: Settings, fmt: str
) -> None:
    user = await make_user(pool, settings)
    image = Image.new("RGB", (16, 16), (1, 2, 3))
    exif = image.getexif()
    exif[0x010F] = "SpyCam Inc"
    out = io.BytesIO()
    image.save(out, format=fmt, exif=exif.tobytes())
    assert b"SpyCam" in out.getvalue()
    media = await uploaded(client, user, "gig_attachment", out.getvalue())
    assert b"SpyCam" not in await _stored(client, user, media)


async def test_a_decompression_bomb_is_refused_before_decoding(
    client: Any, pool: asyncpg.Pool, settings: Settings
) -> None:
    user = await make_user(pool, settings)
    bomb = png_bomb()
    assert len(bomb) < 2000
    status, body = await upload(client, user, "chat_attachment", bomb)
    assert status == 422, body
    assert _error(body, "unprocessable")["details"]["reason"] == "too_many_pixels"
    assert await _count(pool, user.id) == 0


async def test_a_broken_image_is_refused_unreadable(
    client: Any, pool: asyncpg.Pool, settings: Settings
) -> None:
    user = await make_user(pool, settings)
    status, body = await upload(client, user, "avatar", image_bytes("PNG")[:60])
    assert status == 422, body
    assert _error(body, "unprocessable")["details"]["reason"] == "unreadable"


async def test_a_pdf_is_kept_byte_for_byte(client: Any, pool: asyncpg.Pool, settings: Settings) -> None:
    user = await make_user(pool, settings)
    media = await uploaded(client, user, "id_document", PDF_BYTES)
    assert (media["contentType"], media["width"], media["height"]) == ("application/pdf", None, None)
    resp = await client.get(media["url"].split(str(client.port), 1)[1])
    assert await resp.read() == PDF_BYTES
    assert resp.headers["Content-Disposition"].startswith("attachment")


async def test_over_the_kind_limit_is_413_in_the_error_shape(
    aiohttp_client: Any, make_app: Any, pool: asyncpg.Pool, settings: Settings
) -> None:
    limits = {"avatar": 2048, "id_document": 4096, "gig_attachment": 4096, "chat_attachment": 300_000}
    client = await aiohttp_client(make_app(media_max_bytes=limits))
    user = await make_user(pool, settings)
    big = image_bytes("PNG", (200, 200), compress_level=0)
    assert 4096 < len(big) < 300_000
    status, body = await upload(client, user, "avatar", big)
    assert status == 413, body
    error = _error(body, "too_large")
    assert error["details"]["maxBytes"] == 2048 and "avatar" in error["message"]
    # The same file fits a chat attachment's limit; the file before its kind is judged after.
    f = aiohttp.FormData()
    f.add_field("file", big, filename="a.png", content_type="image/png")
    f.add_field("kind", "avatar")
    resp = await client.post("/api/media", data=f, headers=user.headers)
    assert resp.status == 413 and _error(await resp.json(), "too_large")
    media = await uploaded(client, user, "chat_attachment", big)
    assert media["size"] > 0
    # A body declaring more than any kind may hold is refused before it is read.
    resp = await client.post(
        "/api/media",
        data=b"x" * 400_000,
        headers={**user.headers, "Content-Type": "multipart/form-data; boundary=zzz"},
    )
    assert resp.status == 413 and _error(await resp.json(), "too_large")
    assert await _count(pool, user.id) == 1


@pytest.mark.parametrize(
    ("make_body", "field"),
    [
        (lambda: form(None, image_bytes()), "kind"),
        (lambda: form("avatar", None), "file"),
        (lambda: form("portrait", image_bytes()), "kind"),
        (lambda: form("avatar", b""), "file"),
    ],
)
async def test_missing_or_bad_fields_are_400(
    client: Any, pool: asyncpg.Pool, settings: Settings, make_body: Any, field: str
) -> None:
    user = await make_user(pool, settings)
    resp = await client.post("/api/media", data=make_body(), headers=user.headers)
    body = await resp.json()
    assert resp.status == 400, body
    assert field in _error(body, "bad_request")["details"]["fields"]


async def test_not_a_form_or_a_broken_form_is_400(
    client: Any, pool: asyncpg.Pool, settings: Settings
) -> None:
    user = await make_user(pool, settings)
    for headers, data in [
        ({"Content-Type": "application/json"}, b'{"kind": "avatar"}'),
        ({"Content-Type": "multipart/form-data"}, b"--x\r\n\r\n"),  # no boundary
        ({"Content-Type": "multipart/form-data; boundary=x"}, b"--x\r\nbroken"),
        ({"Content-Type": "multipart/form-data; boundary=x"}, b"garbage without any boundary"),
    ]:
        resp = await client.post("/api/media", data=data, headers={**user.headers, **headers})
        body = await resp.json()
        assert resp.status == 400, (headers, data, body)
        _error(body, "bad_request")


async def test_strangers_cannot_upload(client: Any) -> None:
    resp = await client.post("/api/media", data=form("avatar", image_bytes()))
    assert resp.status == 401
    _error(await resp.json(), "unauthorized")


async def test_a_json_body_over_aiohttps_limit_is_413_in_the_error_shape(
    client: Any, pool: asyncpg.Pool, settings: Settings
) -> None:
    """Routes that read JSON keep aiohttp's 1 MiB body limit; its refusal is our error shape."""
    user = await make_user(pool, settings)
    big = b'{"mediaId": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    resp = await client.post(
        "/api/users/me/avatar", data=big, headers={**user.headers, "Content-Type": "application/json"}
    )
    assert resp.status == 413
    _error(await resp.json(), "too_large")
