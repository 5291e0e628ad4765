"""The primary bank account: users.bank_account_id (the API's bankAccountId) names a verified,
not-removed bank account of the user, or is null while they have none.

It is kept in the transaction of every change that can affect it: the first account to be verified
becomes primary (`account_verified`, from the penny-drop result, whether it came in the verify
answer or by webhook); POST /api/bank-accounts/{id}/primary makes another verified account
primary; removing the primary moves it to the oldest other verified account, or clears it
(`account_removed`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from hub.keys import POOL
from rest.api import Routes, load, ok
from rest.errors import ApiError
from rest.http import path_uuid, require_user
from rest.users import USER_COLUMNS, User

if TYPE_CHECKING:
    import uuid

    from hub.db import Conn

routes = Routes("wallet")


async def account_verified(conn: Conn, account_id: uuid.UUID | str, user_id: uuid.UUID | str) -> None:
    """The account was just verified: it becomes the user's primary when they have none."""
    await conn.execute(
        "UPDATE users SET bank_account_id = $2 WHERE id = $1 AND bank_account_id IS NULL", user_id, account_id
    )


async def account_removed(conn: Conn, account_id: uuid.UUID | str, user_id: uuid.UUID | str) -> None:
    """The account was just removed: when it was the primary, the oldest other verified account
    takes its place (null when there is none)."""
    await conn.execute(
        "UPDATE users SET bank_account_id = (SELECT b.id FROM bank_accounts b WHERE b.user_id = $1"
        " AND b.status = 'verified' AND b.deleted_at IS NULL AND b.id <> $2 ORDER BY b.created_at, b.id"
        " LIMIT 1) WHERE id = $1 AND bank_account_id = $2",
        user_id,
        account_id,
    )


@routes.post(
    "/api/bank-accounts/{id}/primary",
    summary="Make a verified bank account of mine my primary one (bankAccountId)",
    description="Answers the caller's profile with its new bankAccountId. 409 (details.status) for an"
    " account that is not verified; 404 for none of yours.",
    auth=True,
    response=User,
    errors=(404, 409),
)
async def make_primary(request: web.Request) -> web.Response:
    """Make one of my verified bank accounts the primary one."""
    claims = require_user(request)
    account_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        # FOR SHARE: a concurrent removal of this account waits, then finds it primary and moves
        # the primary on; it cannot remove it between this check and the update.
        status = await conn.fetchval(
            "SELECT status FROM bank_accounts WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL"
            " FOR SHARE",
            account_id,
            claims.user_id,
        )
        if status is None:
            raise ApiError("not_found", "No such bank account of yours.")
        if status != "verified":
            raise ApiError(
                "conflict",
                "Only a verified account can be primary; verify it first"
                " (POST /api/bank-accounts/{id}/verify).",
                details={"status": status},
            )
        row = await conn.fetchrow(
            f"UPDATE users SET bank_account_id = $2 WHERE id = $1 RETURNING {USER_COLUMNS}",
            claims.user_id,
            account_id,
        )
    if row is None:
        raise ApiError("unauthorized", "The user of this access token no longer exists; log in again.")
    return ok(load(User, row))
