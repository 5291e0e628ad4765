"""A fake of Google's JWKS endpoint on loopback, and ID tokens signed by its keys (or others)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

CLIENT_ID = "gigwire-test.apps.googleusercontent.com"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class FakeGoogle:
    """Serves `keys` (kid -> private key; their public halves) as a JWKS with `cache_control`;
    counts the fetches."""

    keys: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    cache_control: str = "public, max-age=3600"
    fetches: int = 0
    url: str = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/oauth2/v3/certs", self._certs)
        return app

    async def _certs(self, request: web.Request) -> web.Response:
        self.fetches += 1
        entries = []
        for kid, key in self.keys.items():
            jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
            entries.append({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})
        return web.json_response({"keys": entries}, headers={"Cache-Control": self.cache_control})

    def token(
        self,
        sub: str,
        email: str,
        kid: str = "k1",
        key: rsa.RSAPrivateKey | None = None,
        **claims: Any,
    ) -> str:
        """An ID token for `sub`/`email`, signed by `key` (default: the served key `kid`)."""
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": "https://accounts.google.com",
            "aud": CLIENT_ID,
            "sub": sub,
            "email": email,
            "email_verified": True,
            "name": "Asha Rao",
            "picture": "https://lh3.googleusercontent.com/a/photo.jpg",
            "iat": now,
            "exp": now + 3600,
            **claims,
        }
        signer = key or self.keys[kid]
        return jwt.encode(body, signer, algorithm="RS256", headers={"kid": kid})
