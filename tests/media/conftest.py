"""Media test helpers: a local S3-compatible server (moto's server mode, started here as a process
on a free port), images made with Pillow, multipart uploads, and apps on either media store."""

from __future__ import annotations

import io
import os
import socket
import struct
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import pytest
from aiohttp import web
from PIL import Image

from tests.factories import TestUser

S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    def bucket(self) -> str:
        """A new empty bucket on the server."""
        name = "media-" + uuid.uuid4().hex[:12]
        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        client.create_bucket(Bucket=name)
        return name

    def url(self, bucket: str) -> str:
        return f"s3://{bucket}?endpoint={self.endpoint}&region=us-east-1"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server on a free loopback port, for the whole run; the AWS credentials it takes are
    put in the environment (boto3 reads them there, as in production)."""
    saved = {k: os.environ.get(k) for k in S3_CREDENTIALS}
    os.environ.update(S3_CREDENTIALS)
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto's S3 server did not start") from None
                time.sleep(0.1)
        yield S3Server(f"http://127.0.0.1:{port}")
    finally:
        process.terminate()
        process.wait(10)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


STORES = ("local", "s3")


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """MEDIA_STORAGE_URL of each backend in turn: a local directory, a fresh bucket on moto."""
    if request.param == "local":
        return (tmp_path / "store").as_uri()
    server: S3Server = request.getfixturevalue("s3_server")
    return server.url(server.bucket())


# -- files ------------------------------------------------------------------------------------------


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (40, 30), **save: Any) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 60)).save(out, format=fmt, **save)
    return out.getvalue()


def jpeg_with_gps() -> bytes:
    """A JPEG whose EXIF holds a GPS position, a camera and an orientation (rotate 90°)."""
    image = Image.new("RGB", (60, 20), (10, 120, 200))
    exif = image.getexif()
    exif[0x010F] = "SpyCam Inc"  # Make
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to view
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (12.0, 58.0, 1.5), "E", (77.0, 35.0, 2.5)
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif.tobytes())
    return out.getvalue()


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A small PNG whose header claims width x height pixels (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


PDF_BYTES = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
ELF_BYTES = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 200


def form(
    kind: str | None, data: bytes | None, filename: str = "f.bin", content_type: str = "image/png"
) -> aiohttp.FormData:
    f = aiohttp.FormData(default_to_multipart=True)
    if kind is not None:
        f.add_field("kind", kind)
    if data is not None:
        f.add_field("file", data, filename=filename, content_type=content_type)
    return f


async def upload(
    client: Any, user: TestUser, kind: str, data: bytes, filename: str = "f.png"
) -> tuple[int, Any]:
    resp = await client.post("/api/media", data=form(kind, data, filename), headers=user.headers)
    return resp.status, await resp.json()


async def uploaded(client: Any, user: TestUser, kind: str, data: bytes | None = None) -> dict[str, Any]:
    """Upload (a small PNG by default) and return the Media, asserting 201."""
    status, body = await upload(client, user, kind, data if data is not None else image_bytes())
    assert status == 201, body
    media: dict[str, Any] = body["data"]
    return media


async def fetch(client: Any, url: str) -> tuple[int, bytes, Any]:
    """GET an absolute link (gigwire's own or the store's), following redirects."""
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.read(), resp.headers


@pytest.fixture
def media_app(make_app: Callable[..., web.Application], store_url: str) -> web.Application:
    return make_app(media_storage_url=store_url)
