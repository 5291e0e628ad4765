"""POST /api/auth/google (also /api/auth/google-login, seeds/002's name): sign in (and sign up)
with a Google ID token.

The token must be an RS256 JWT signed by one of Google's keys (rest/google_keys.py, from
GOOGLE_JWKS_URL), for one of GOOGLE_CLIENT_IDS (aud), issued by accounts.google.com, not expired,
with email_verified true. Its `sub` names the Google account: a user already linked to it logs in;
else the user owning the (verified) email is linked to it and logs in; else a new user is created
with that email verified and no phone. Money does not move for a user until they verify a phone
(rest/account_rules.py)."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Annotated, Any

import jwt
import msgspec
from aiohttp import web

from domain import trust
from hub.keys import POOL, SETTINGS, TOKENS
from rest.api import Body, Routes, load
from rest.auth import Session
from rest.errors import ApiError
from rest.google_keys import GOOGLE_KEYS, GoogleKeys, KeysUnavailable
from rest.refresh import issue_refresh, session_response
from rest.users import EMAIL, URL, USER_COLUMNS, User

if TYPE_CHECKING:
    from hub.db import Conn

log = logging.getLogger("gigwire.google")
routes = Routes("auth")

ISSUERS = ("accounts.google.com", "https://accounts.google.com")
LEEWAY_S = 30
_CACHES: dict[str, GoogleKeys] = {}


class GoogleSignIn(Body):
    """POST /api/auth/google: the ID token the Google Sign-In SDK gave the client."""

    unpadded = frozenset({"idToken"})

    id_token: Annotated[
        str, msgspec.Meta(min_length=1, max_length=8192, description="a Google ID token (JWT)")
    ]


def _keys(app: web.Application) -> GoogleKeys:
    own = app.get(GOOGLE_KEYS)
    if own is not None:
        return own
    url = app[SETTINGS].google_jwks_url
    return _CACHES.setdefault(url, GoogleKeys(url))


def _refused(reason: str, message: str) -> ApiError:
    return ApiError("unauthorized", message, details={"reason": reason})


async def verify_id_token(app: web.Application, token: str) -> dict[str, Any]:
    """The claims of a valid Google ID token; 401 (details.reason) for any other."""
    audiences = app[SETTINGS].google_client_ids
    if not audiences:
        raise ApiError(
            "forbidden",
            "Google sign-in is not enabled on this server (GOOGLE_CLIENT_IDS is unset).",
            details={"reason": "google_disabled"},
        )
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise _refused("malformed", "The Google ID token is not a JWT.") from None
    kid = header.get("kid")
    if header.get("alg") != "RS256" or not isinstance(kid, str):
        raise _refused("bad_signature", "The Google ID token must be RS256-signed and name its key (kid).")
    try:
        key = await _keys(app).key(kid)
    except KeysUnavailable:
        raise ApiError(
            "bad_gateway", "Google's signing keys cannot be fetched just now; try again."
        ) from None
    if key is None:
        raise _refused("unknown_key", "The Google ID token is signed by a key Google does not list.")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key,
            algorithms=["RS256"],
            audience=list(audiences),
            issuer=ISSUERS,
            leeway=LEEWAY_S,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise _refused("expired", "The Google ID token has expired; sign in with Google again.") from None
    except jwt.InvalidAudienceError:
        raise _refused("wrong_audience", "The Google ID token was not issued for this app.") from None
    except jwt.InvalidIssuerError:
        raise _refused("wrong_issuer", "The Google ID token was not issued by Google.") from None
    except jwt.InvalidSignatureError:
        raise _refused("bad_signature", "The Google ID token's signature does not verify.") from None
    except jwt.InvalidTokenError as exc:
        raise _refused("invalid", f"The Google ID token is not valid ({exc}).") from None
    email = claims.get("email")
    if claims.get("email_verified") not in (True, "true") or not isinstance(email, str):
        raise _refused("email_unverified", "Google has not verified this account's email address.")
    if not EMAIL.fullmatch(email) or len(email) > 254:
        raise _refused("invalid", "The Google ID token's email is not a usable address.")
    if not isinstance(claims["sub"], str) or not 1 <= len(claims["sub"]) <= 255:
        raise _refused("invalid", "The Google ID token's subject is not valid.")
    return claims


def _profile(claims: dict[str, Any]) -> tuple[str | None, str | None]:
    """The name and picture Google gives, when they fit the profile's rules."""
    name = claims.get("name")
    name = name.strip()[:100] if isinstance(name, str) and name.strip() and "\x00" not in name else None
    picture = claims.get("picture")
    picture = (
        picture if isinstance(picture, str) and len(picture) <= 2048 and URL.fullmatch(picture) else None
    )
    return name, picture


async def _user(conn: Conn, sub: str, email: str, name: str | None, picture: str | None) -> Any:
    """The user of this Google account: linked, linked now by email, or created. Locked FOR UPDATE."""
    for _ in range(3):  # a concurrent first sign-in may create the row between our look and insert
        row = await conn.fetchrow(
            f"SELECT {USER_COLUMNS}, false AS inserted FROM users WHERE google_sub = $1 FOR UPDATE", sub
        )
        if row is not None:
            return row
        owner = await conn.fetchrow(
            "SELECT id, google_sub FROM users WHERE lower(email) = lower($1) AND deleted_at IS NULL"
            " FOR UPDATE",
            email,
        )
        if owner is not None:
            if owner["google_sub"] == sub:
                continue  # made by a concurrent first sign-in, committed after the look by sub
            if owner["google_sub"] is not None:
                raise ApiError(
                    "conflict",
                    "The account with this email is linked to another Google account.",
                    details={"reason": "linked_elsewhere"},
                )
            # Google verified the address: the account that owns it is this person's.
            return await conn.fetchrow(
                "UPDATE users SET google_sub = $2, email_verified = true, last_active_at = now()"
                f" WHERE id = $1 RETURNING {USER_COLUMNS}, false AS inserted",
                owner["id"],
                sub,
            )
        row = await conn.fetchrow(
            "INSERT INTO users (google_sub, email, email_verified, name, avatar_url)"
            " VALUES ($1, $2, true, $3, $4) ON CONFLICT DO NOTHING"
            f" RETURNING {USER_COLUMNS}, true AS inserted",
            sub,
            email,
            name,
            picture,
        )
        if row is not None:
            return row
    raise ApiError("conflict", "This Google account is signing in elsewhere right now; try again.")


@routes.post(
    "/api/auth/{via:google|google-login}",
    document={
        "/api/auth/google": {},
        "/api/auth/google-login": {"summary": "The same as POST /api/auth/google (seeds/002's name)"},
    },
    summary="Log in (and sign up) with a Google ID token",
    description="The token is verified against Google's keys (RS256, audience among GOOGLE_CLIENT_IDS,"
    " issuer accounts.google.com, expiry, email_verified). The Google account's user logs in; a user"
    " whose email is the token's is linked to it; else a new user is created (isNewUser) with the"
    " email verified and no phone: verify a phone before paying or withdrawing. Same answer as"
    " verify-otp. 401 (details.reason: malformed, bad_signature, unknown_key, expired, wrong_audience,"
    " wrong_issuer, email_unverified, invalid); 403 when Google sign-in is not configured; 409 when"
    " the email's account is linked to another Google account; 502 when Google's keys cannot be"
    " fetched.",
    body=GoogleSignIn,
    response=Session,
    errors=(401, 403, 409, 502),
)
async def google_sign_in(request: web.Request, body: GoogleSignIn) -> web.Response:
    """Verify the Google ID token; find, link or create its user; start a session."""
    settings = request.app[SETTINGS]
    claims = await verify_id_token(request.app, body.id_token)
    name, picture = _profile(claims)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        found = await _user(conn, claims["sub"], claims["email"], name, picture)
        # A verified email is an input of the trust rule (and a login recomputes, as verify-otp's).
        await trust.recompute(conn, str(found["id"]))
        user = await conn.fetchrow(
            f"SELECT {USER_COLUMNS}, $2::bool AS inserted FROM users WHERE id = $1",
            found["id"],
            found["inserted"],
        )
        assert user is not None
        family = uuid.uuid4()
        refresh = await issue_refresh(conn, settings, user["id"], family)
    access = request.app[TOKENS].issue(str(user["id"]), list(user["roles"]), family=str(family))
    log.info("google sign-in", extra={"userId": str(user["id"]), "new": bool(user["inserted"])})
    data = Session(
        token=access,
        refresh_token=refresh,
        expires_in=settings.access_token_ttl,
        user=load(User, user),
        is_new_user=bool(user["inserted"]),
    )
    return session_response(data, settings, refresh)
