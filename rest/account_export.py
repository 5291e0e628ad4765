"""GET /api/users/me/export: everything gigwire keeps about the caller, as one JSON document (the
right to a copy of one's data). Each section uses the shape its own route answers."""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated, Any

import msgspec
from aiohttp import web

from domain import reviews
from domain.order_states import Order, load_order
from hub.keys import POOL, SETTINGS
from hub.model import EpochMs
from rest.api import Routes, Wire, load, load_all, ok
from rest.applications import Application
from rest.bank_accounts import BankAccount
from rest.devices import Device
from rest.errors import ApiError
from rest.gig_search import GIG_COLUMNS, Gig, load_gig
from rest.http import require_user
from rest.messages import Message
from rest.notifications import Notification
from rest.reviews import Review
from rest.users import USER_COLUMNS, User
from rest.wallet import WalletTransaction, Withdrawal

routes = Routes("users")


class AccountExport(Wire):
    """The caller's data: profile, gigs posted, applications made, orders (as client or doer),
    chat messages sent, wallet transactions, withdrawals, bank accounts (masked), push devices,
    notifications, and reviews written and received."""

    exported_at: EpochMs
    profile: User
    gigs: list[Gig]
    applications: list[Application]
    orders: list[Order]
    messages_sent: list[Message]
    wallet_transactions: list[WalletTransaction]
    withdrawals: list[Withdrawal]
    bank_accounts: list[BankAccount]
    devices: list[Device]
    notifications: list[Notification]
    reviews_written: list[Review]
    reviews_received: list[Review]
    counts: Annotated[dict[str, int], msgspec.Meta(description="section name -> number of items")]


_QUERIES = {
    "gigs": f"SELECT {GIG_COLUMNS} FROM gigs g WHERE g.client_id = $1 ORDER BY g.created_at, g.id",
    "applications": "SELECT a.id::text AS id, a.gig_id::text AS gig_id, a.doer_id::text AS doer_id,"
    " a.proposal, a.bid_amount, a.currency, a.status, a.created_at, a.updated_at FROM applications a"
    " WHERE a.doer_id = $1 ORDER BY a.created_at, a.id",
    "orders": "SELECT * FROM orders WHERE client_id = $1 OR doer_id = $1 ORDER BY created_at, id",
    "messages_sent": "SELECT id, order_id, seq, sender_id, text, attachments, client_msg_id, created_at"
    " FROM messages WHERE sender_id = $1 ORDER BY created_at, id",
    "wallet_transactions": "SELECT t.id::text AS id, t.kind, CASE WHEN a.id = t.credit_account THEN"
    " 'credit' ELSE 'debit' END AS direction, t.amount, t.currency, t.order_id, t.reference, t.created_at"
    " FROM ledger_accounts a JOIN ledger_transfers t ON a.id IN (t.debit_account, t.credit_account)"
    " WHERE a.user_id = $1 AND a.kind = 'wallet' ORDER BY t.id",
    "withdrawals": "SELECT * FROM withdrawals WHERE user_id = $1 ORDER BY created_at, id",
    "bank_accounts": "SELECT *, 'XXXXXX' || last4 AS account_number_masked FROM bank_accounts"
    " WHERE user_id = $1 AND deleted_at IS NULL ORDER BY created_at, id",
    "devices": "SELECT * FROM devices WHERE user_id = $1 ORDER BY created_at",
    "notifications": "SELECT *, read_at IS NOT NULL AS read FROM notifications WHERE user_id = $1"
    " ORDER BY created_at, id",
    "reviews_written": f"SELECT {reviews.COLUMNS} FROM {reviews.FROM} WHERE r.reviewer_id = $1"
    " ORDER BY r.created_at, r.id",
    "reviews_received": f"SELECT {reviews.COLUMNS} FROM {reviews.FROM} WHERE r.reviewee_id = $1"
    " ORDER BY r.created_at, r.id",
}


def _review(row: Any, edit_hours: float) -> Review:
    until = row["created_at"] + dt.timedelta(hours=edit_hours)
    return load(Review, row, editableUntil=int(until.timestamp() * 1000))


@routes.get(
    "/api/users/me/export",
    summary="All my data as one JSON document",
    description="Profile, gigs, applications, orders, messages sent, wallet transactions, withdrawals,"
    " bank accounts (masked), devices, notifications, reviews written and received, oldest first in"
    " each section.",
    auth=True,
    response=AccountExport,
)
async def export_me(request: web.Request) -> web.Response:
    """The caller's data, read in one repeatable-read snapshot so the sections agree."""
    claims = require_user(request)
    edit_hours = request.app[SETTINGS].review_edit_hours
    async with (
        request.app[POOL].acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        profile = await conn.fetchrow(
            f"SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND deleted_at IS NULL",
            claims.user_id,
        )
        if profile is None:
            raise ApiError("unauthorized", "The user of this access token no longer exists; log in again.")
        rows = {name: await conn.fetch(sql, claims.user_id) for name, sql in _QUERIES.items()}
    data = AccountExport(
        exported_at=int(time.time() * 1000),
        profile=load(User, profile),
        gigs=[load_gig(r) for r in rows["gigs"]],
        applications=load_all(Application, rows["applications"]),
        orders=[load_order(r) for r in rows["orders"]],
        messages_sent=load_all(Message, rows["messages_sent"]),
        wallet_transactions=load_all(WalletTransaction, rows["wallet_transactions"]),
        withdrawals=load_all(Withdrawal, rows["withdrawals"]),
        bank_accounts=load_all(BankAccount, rows["bank_accounts"]),
        devices=load_all(Device, rows["devices"]),
        notifications=load_all(Notification, rows["notifications"]),
        reviews_written=[_review(r, edit_hours) for r in rows["reviews_written"]],
        reviews_received=[_review(r, edit_hours) for r in rows["reviews_received"]],
        counts={name: len(found) for name, found in rows.items()},
    )
    return ok(data)
