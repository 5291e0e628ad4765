"""Picking the media store named by MEDIA_STORAGE_URL (the contract is hub/storage.py)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from hub.settings import Settings
from hub.storage import Storage


def storage_url(settings: Settings) -> str:
    """MEDIA_STORAGE_URL, or the default under the data directory."""
    if settings.media_storage_url:
        return settings.media_storage_url
    return (Path(settings.data_dir).resolve() / "media").as_uri()


def open_storage(settings: Settings, url: str | None = None) -> Storage:
    """The store named by `url` (default: `storage_url(settings)`)."""
    url = url or storage_url(settings)
    scheme = urlsplit(url).scheme
    if scheme == "file":
        from hub.storage_local import LocalStorage

        return LocalStorage.from_url(url, settings)
    if scheme == "s3":
        from hub.storage_s3 import S3Storage

        return S3Storage.from_url(url)
    raise ValueError(f"MEDIA_STORAGE_URL: file:// or s3://, got {url!r}")
