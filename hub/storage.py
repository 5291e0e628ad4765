"""The media store contract: bytes kept under a key, read back, deleted, and handed out through a
signed, expiring URL. Two implementations, chosen by MEDIA_STORAGE_URL (hub/storages.py):

- `file:///path` (default `<GIGWIRE_DATA_DIR>/media`): hub/storage_local.py, files on this disk;
  its URLs point at gigwire itself (`GET /api/media/{key}/content?expires=..&sig=..`, an HMAC under
  the server secret: hub/media_sign.py), which reads the file and answers it.
- `s3://bucket?endpoint=URL&region=R&prefix=P`: hub/storage_s3.py, any S3-compatible service; its
  URLs are the service's own presigned GET URLs, so the bytes never pass through gigwire.

Keys are media ids (UUID text); the contract does not interpret them."""

from __future__ import annotations

from typing import Protocol


class StorageError(Exception):
    """The store failed (unreachable, refused): the server's fault, never the client's."""


class Storage(Protocol):
    """Where media bytes live."""

    direct: bool
    """True when `signed_url` points at the store itself (S3); False when gigwire serves the bytes."""

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store `data` under `key` (replacing what was there)."""

    async def get(self, key: str) -> bytes | None:
        """The bytes under `key`; None when there are none."""

    async def delete(self, key: str) -> None:
        """Forget `key`; nothing happens when it is absent (deleting twice is fine)."""

    async def signed_url(self, key: str, expires_at: int, *, base_url: str, content_type: str) -> str:
        """A URL anyone holding it may GET the bytes of `key` with until `expires_at` (epoch
        seconds), answered with `content_type`. `base_url` is gigwire's origin (for stores whose
        URLs point at gigwire)."""

    async def close(self) -> None:
        """Release connections."""
