"""Access tokens: JWTs with sub, iat, exp and jti, verified with the algorithm pinned. A token issued
by a login (verify-otp) or a refresh also carries `fam`, its refresh-token family: the login it
belongs to, so that logging out or a revoked family ends the realtime sessions opened with it."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

import jwt

from hub.settings import Settings

log = logging.getLogger("gigwire.tokens")


class TokenError(Exception):
    """The token is missing, malformed, expired, or not signed by us. str() is a few fixed words
    (`REASONS`), never the JWT library's text: it reaches REST messages and ERROR frames."""


# PyJWT's exception -> the words users see; the first match wins (InvalidSignatureError is a
# DecodeError, so it comes first). Anything else PyJWT refuses is a "malformed token".
REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.InvalidAlgorithmError, "wrong algorithm"),
    (jwt.MissingRequiredClaimError, "missing claim"),
)
MALFORMED = "malformed token"


@dataclass(frozen=True)
class Claims:
    user_id: str
    roles: tuple[str, ...]
    jti: str
    issued_at: int
    expires_at: int
    family_id: str | None = None
    """The refresh-token family (the login) the token was issued for; None for tokens without one."""


class TokenCodec:
    """Issues and verifies access tokens for one Settings."""

    def __init__(self, settings: Settings) -> None:
        self.algorithm = settings.jwt_algorithm
        self.ttl = settings.access_token_ttl
        if self.algorithm == "HS256":
            self._sign_key: str = settings.jwt_secret
            self._verify_key: str = settings.jwt_secret
        else:
            self._sign_key = settings.jwt_private_key
            self._verify_key = settings.jwt_public_key

    def issue(
        self,
        user_id: str,
        roles: tuple[str, ...] | list[str] = (),
        now: int | None = None,
        family: str | None = None,
    ) -> str:
        """A signed access token for `user_id`, valid for the configured TTL; `family` (the refresh-token
        family of the login) goes into the `fam` claim."""
        iat = int(time.time()) if now is None else now
        payload: dict[str, object] = {
            "sub": user_id,
            "iat": iat,
            "exp": iat + self.ttl,
            "jti": uuid.uuid4().hex,
            "typ": "access",
            "roles": list(roles),
        }
        if family is not None:
            payload["fam"] = family
        return jwt.encode(payload, self._sign_key, algorithm=self.algorithm)

    def verify(self, token: str) -> Claims:
        """Decode `token`, accepting only our algorithm, our key, and an unexpired access token."""
        if not isinstance(token, str) or not token:
            raise TokenError("no token")
        try:
            payload = jwt.decode(
                token,
                self._verify_key,
                algorithms=[self.algorithm],
                options={"require": ["sub", "iat", "exp", "jti"]},
            )
        except jwt.PyJWTError as exc:
            reason = next((words for kind, words in REASONS if isinstance(exc, kind)), MALFORMED)
            log.debug("token refused", extra={"reason": reason, "error": str(exc)})
            raise TokenError(reason) from None
        if payload.get("typ") != "access" or not isinstance(payload.get("sub"), str):
            raise TokenError("not an access token")
        roles = payload.get("roles") or []
        family = payload.get("fam")
        return Claims(
            user_id=payload["sub"],
            roles=tuple(r for r in roles if isinstance(r, str)),
            jti=str(payload["jti"]),
            issued_at=int(payload["iat"]),
            expires_at=int(payload["exp"]),
            family_id=family if isinstance(family, str) else None,
        )
