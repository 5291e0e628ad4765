"""Refresh tokens: issue, rotate, revoke; the `refreshToken` cookie; /api/auth/refresh and /logout.

A refresh token is an opaque random string; the server keeps only its sha256. A login starts a
family; each refresh marks the presented token rotated and issues the next one of the family.
Presenting a rotated token again means it was copied: the whole family is revoked, so neither the
thief nor the owner can go on refreshing (the owner logs in again). Two refreshes racing with one
token count as reuse the same way: clients must not refresh concurrently with the same token.
Logging out revokes the family. Access tokens carry their family (`fam`): revoking a family (logout,
reuse) also enqueues SESSION_REVOKED {userId, familyId, reason} in the same transaction, and every
hub closes that login's realtime sessions (hub/revoke.py); over REST an access token stays valid
until it expires, unless its user no longer exists (rest/http.py)."""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from typing import TYPE_CHECKING, Annotated, Literal, cast

import asyncpg
import msgspec
from aiohttp import web

from hub.events import SessionRevoked, to_wire
from hub.keys import POOL, SETTINGS, TOKENS
from hub.outbox import enqueue
from hub.settings import Settings
from rest.api import Body, Routes, Wire, ok
from rest.errors import ApiError
from rest.http import BANNED

if TYPE_CHECKING:
    from hub.db import Conn

log = logging.getLogger("gigwire.auth")
routes = Routes("auth")

COOKIE = "refreshToken"
COOKIE_PATH = "/api/auth"


class TokenInput(Body):
    """POST /api/auth/refresh and /logout: the refresh token, unless the cookie carries it."""

    keep_spaces = frozenset({"refreshToken"})  # opaque: a wrong one is simply unknown

    refresh_token: (
        Annotated[
            str,
            msgspec.Meta(
                min_length=1,
                max_length=512,
                description="Instead of the refreshToken cookie (apps without cookies).",
            ),
        ]
        | None
    ) = None


class Tokens(Wire):
    """A session's new tokens."""

    token: Annotated[str, msgspec.Meta(description="access token (JWT), as Authorization: Bearer")]
    refresh_token: Annotated[str, msgspec.Meta(description="also set as the refreshToken cookie")]
    expires_in: Annotated[int, msgspec.Meta(description="access token lifetime, seconds")]


class LoggedOut(Wire):
    """The answer of a logout."""

    logged_out: Literal[True]


_COOKIE_PARAM = {
    "in": "cookie",
    "name": COOKIE,
    "required": False,
    "schema": {"type": "string"},
    "description": "The refresh token set by verify-otp and refresh (HttpOnly, Path=/api/auth).",
}


def token_hash(token: str) -> bytes:
    """The stored form of a refresh token."""
    return hashlib.sha256(token.encode()).digest()


async def issue_refresh(
    conn: Conn,
    settings: Settings,
    user_id: uuid.UUID,
    family_id: uuid.UUID | None = None,
) -> str:
    """Store and return a new refresh token of `family_id` (a new family when None)."""
    token = secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at)"
        " VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
        token_hash(token),
        family_id or uuid.uuid4(),
        user_id,
        float(settings.refresh_token_ttl),
    )
    return token


async def revoke_family(conn: Conn, family_id: uuid.UUID, reason: str) -> bool:
    """Revoke every token of the family not yet revoked and, when any was, tell every hub to close
    the login's sessions (SESSION_REVOKED through the outbox, committed with the revocation).
    Returns whether anything was revoked."""
    user_id = await conn.fetchval(
        "WITH revoked AS (UPDATE refresh_tokens SET revoked_at = now()"
        " WHERE family_id = $1 AND revoked_at IS NULL RETURNING user_id)"
        " SELECT user_id FROM revoked LIMIT 1",
        family_id,
    )
    if user_id is None:
        return False
    event = SessionRevoked(user_id=str(user_id), reason=reason, family_id=str(family_id))
    await enqueue(
        cast("asyncpg.Connection", conn), "SESSION_REVOKED", to_wire(event), user_ids=[str(user_id)]
    )
    return True


def set_cookie(response: web.StreamResponse, settings: Settings, token: str) -> None:
    """Put the refresh token in the HttpOnly, SameSite=Lax cookie sent only to /api/auth."""
    response.set_cookie(
        COOKIE,
        token,
        max_age=settings.refresh_token_ttl,
        path=COOKIE_PATH,
        httponly=True,
        samesite="Lax",
        secure=settings.cookie_secure or None,
    )


def clear_cookie(response: web.StreamResponse, settings: Settings) -> None:
    """Tell the browser to drop the refresh-token cookie."""
    response.del_cookie(
        COOKIE, path=COOKIE_PATH, httponly=True, samesite="Lax", secure=settings.cookie_secure or None
    )


def session_response(data: Tokens, settings: Settings, refresh: str, status: int = 200) -> web.Response:
    """The success body `data` with the refresh token also set as the cookie."""
    response = ok(data, status=status)
    set_cookie(response, settings, refresh)
    return response


def _presented(request: web.Request, body: TokenInput) -> str | None:
    """The refresh token of the body (`refreshToken`) or, failing that, of the cookie."""
    return body.refresh_token or request.cookies.get(COOKIE) or None


def _refused(settings: Settings, message: str, reason: str) -> web.Response:
    response = ApiError("unauthorized", message, details={"reason": reason}).response()
    if reason != "rotated_just_now":
        # The browser should stop sending a dead token; but a racing request's cookie is the
        # winner's fresh one, which must survive the loser's answer.
        clear_cookie(response, settings)
    return response


@routes.post(
    "/api/auth/refresh",
    summary="Rotate a refresh token: new access token and refresh token",
    description="The token comes from the body's refreshToken, else the refreshToken cookie. The"
    " presented token is used up; a second use revokes its whole family. 401 when there is no token,"
    " or it is unknown, expired, revoked, or already used (details.reason: missing, unknown, expired,"
    " revoked, reused, rotated_just_now); log in again. 403 (details.reason: banned) when the user is"
    " banned.",
    body=TokenInput,
    body_required=False,
    response=Tokens,
    parameters=(_COOKIE_PARAM,),
    errors=(401, 403),
)
async def refresh(request: web.Request, body: TokenInput) -> web.Response:
    """Rotate the presented refresh token: answer a new access token and refresh token."""
    settings = request.app[SETTINGS]
    token = _presented(request, body)
    if token is None:
        raise ApiError(
            "unauthorized",
            'Send the refresh token in the refreshToken cookie or as {"refreshToken": ...}.',
            details={"reason": "missing"},
        )
    digest = token_hash(token)
    reason = ""
    user: asyncpg.Record | None = None
    new_refresh = ""
    async with request.app[POOL].acquire() as conn, conn.transaction():
        # Exactly one of concurrent refreshes with one token gets the row: the others wait for its
        # commit, re-check rotated_at, and find it set.
        row = await conn.fetchrow(
            "UPDATE refresh_tokens SET rotated_at = now() WHERE token_hash = $1 AND rotated_at IS NULL"
            " AND revoked_at IS NULL AND expires_at > now() RETURNING family_id, user_id",
            digest,
        )
        if row is not None:
            user = await conn.fetchrow(
                "UPDATE users SET last_active_at = now() WHERE id = $1 RETURNING roles, banned_at",
                row["user_id"],
            )
            if user is not None and user["banned_at"] is not None:
                # A refresh racing the ban may have rotated a token the ban's revocation missed.
                raise ApiError("forbidden", BANNED, details={"reason": "banned"})
            new_refresh = await issue_refresh(conn, settings, row["user_id"], row["family_id"])
        else:
            old = await conn.fetchrow(
                "SELECT family_id, user_id, rotated_at, revoked_at,"
                " rotated_at > now() - make_interval(secs => $2) AS just_rotated"
                " FROM refresh_tokens WHERE token_hash = $1",
                digest,
                float(settings.refresh_reuse_grace),
            )
            if old is None:
                reason = "unknown"
            elif old["revoked_at"] is not None:
                reason = "revoked"
            elif old["just_rotated"]:
                # A client racing itself (two tabs, a retry) is not a thief: within the grace period
                # the loser is refused without revoking the login the winner just renewed.
                reason = "rotated_just_now"
            elif old["rotated_at"] is not None:
                reason = "reused"
                await revoke_family(conn, old["family_id"], "refresh_reused")
                log.warning(
                    "refresh token reused; its family is revoked",
                    extra={"userId": str(old["user_id"]), "family": str(old["family_id"])},
                )
            else:
                reason = "expired"
    if reason:
        message = {
            "unknown": "This refresh token is not known; log in again.",
            "revoked": "This session was logged out; log in again.",
            "reused": "This refresh token was already used, so every token of its login is now revoked; "
            "log in again.",
            "expired": "This refresh token has expired; log in again.",
            "rotated_just_now": "This refresh token was just rotated by another request; use the "
            "tokens that request received.",
        }[reason]
        return _refused(settings, message, reason)
    assert row is not None and user is not None
    access = request.app[TOKENS].issue(str(row["user_id"]), list(user["roles"]), family=str(row["family_id"]))
    data = Tokens(token=access, refresh_token=new_refresh, expires_in=settings.access_token_ttl)
    return session_response(data, settings, new_refresh)


@routes.post(
    "/api/auth/logout",
    summary="Log out: revoke the refresh token's family and clear the cookie",
    description="Idempotent: answers 200 with or without a valid token. Ends the login's realtime"
    " sessions (/ws and Socket.IO, every process) within a second; its access tokens are refused by the"
    " realtime hub from then on and stay valid over REST until they expire.",
    body=TokenInput,
    body_required=False,
    response=LoggedOut,
    parameters=(_COOKIE_PARAM,),
)
async def logout(request: web.Request, body: TokenInput) -> web.Response:
    """Revoke the presented refresh token's family and clear the cookie; succeeds whatever is sent."""
    settings = request.app[SETTINGS]
    token = _presented(request, body)
    if token is not None:
        async with request.app[POOL].acquire() as conn, conn.transaction():
            family = await conn.fetchval(
                "SELECT family_id FROM refresh_tokens WHERE token_hash = $1", token_hash(token)
            )
            if family is not None:
                await revoke_family(conn, family, "logout")
    response = ok(LoggedOut(logged_out=True))
    clear_cookie(response, settings)
    return response
