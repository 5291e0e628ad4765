"""The local-disk media store (MEDIA_STORAGE_URL=file:///path): one file per key under the
directory, spread over 256 subdirectories by the key's first two characters. Files are written to a
temporary name and renamed, so a reader never sees half a file. Its signed URLs are gigwire's own
(hub/media_sign.py)."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from hub.media_sign import content_path, signature
from hub.settings import Settings
from hub.storage import StorageError

_KEY = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,127}")


class LocalStorage:
    """Files under `root`."""

    direct = False

    def __init__(self, root: Path, settings: Settings) -> None:
        self.root = root
        self.settings = settings

    @classmethod
    def from_url(cls, url: str, settings: Settings) -> LocalStorage:
        return cls(Path(unquote(urlsplit(url).path)), settings)

    def path(self, key: str) -> Path:
        """The file of `key`; ValueError for a key that could leave the directory."""
        if not _KEY.fullmatch(key) or ".." in key:
            raise ValueError(f"bad media key {key!r}")
        return self.root / key[:2] / key

    def _put(self, key: str, data: bytes) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{key}.{os.getpid()}.tmp")
        with open(temporary, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        try:
            await asyncio.to_thread(self._put, key, data)
        except OSError as exc:
            raise StorageError(f"writing {key}: {exc.strerror}") from exc

    def _get(self, key: str) -> bytes | None:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            return None

    async def get(self, key: str) -> bytes | None:
        try:
            return await asyncio.to_thread(self._get, key)
        except OSError as exc:
            raise StorageError(f"reading {key}: {exc.strerror}") from exc

    async def delete(self, key: str) -> None:
        try:
            await asyncio.to_thread(self.path(key).unlink, missing_ok=True)
        except OSError as exc:
            raise StorageError(f"deleting {key}: {exc.strerror}") from exc

    async def signed_url(self, key: str, expires_at: int, *, base_url: str, content_type: str) -> str:
        sig = signature(self.settings, key, expires_at)
        return f"{base_url}{content_path(key)}?expires={expires_at}&sig={sig}"

    async def close(self) -> None:
        pass
