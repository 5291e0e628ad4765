"""Signatures of gigwire's own media links: `GET /api/media/{id}/content?expires=E&sig=S`, where S is
an HMAC-SHA256 of "id:E" under a key derived from the server secret. Anyone holding the link may
read the bytes until E (epoch seconds); changing the id or E breaks the signature."""

from __future__ import annotations

import base64
import hashlib
import hmac

from hub.settings import Settings


def _key(settings: Settings) -> bytes:
    # Derived, so the JWT key itself signs nothing but JWTs.
    secret = settings.jwt_secret or settings.jwt_private_key
    return hashlib.sha256(b"gigwire-media-v1:" + secret.encode()).digest()


def signature(settings: Settings, media_id: str, expires: int) -> str:
    """The signature of a link to `media_id` valid until `expires` (epoch seconds)."""
    mac = hmac.new(_key(settings), f"{media_id}:{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def valid(settings: Settings, media_id: str, expires: int, sig: str, now: float) -> bool:
    """Whether `sig` signs `media_id` until `expires`, and `expires` has not passed."""
    if expires < now:
        return False
    return hmac.compare_digest(signature(settings, media_id, expires).encode(), sig.encode())


def content_path(media_id: str) -> str:
    """The path gigwire serves a media's bytes at."""
    return f"/api/media/{media_id}/content"
