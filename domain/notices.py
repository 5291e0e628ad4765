"""What gigwire tells users, and when: one notification per domain event and recipient, written
through `domain.notify.notify` inside the transaction of the change (so it exists if and only if
the change committed), on each channel (inbox, live, push) the recipient's preference for its type
allows. docs/notifications.md is this table with the texts.

| event (`data.event`) | who | type |
|---|---|---|
| new_application | the gig's owner | new_application |
| application_accepted | the doer | application |
| application_rejected (by the owner, or because another was accepted) | the doer | application |
| application_withdrawn | the gig's owner | application |
| order_opened (an application accepted) | both parties | order_update |
| payment_received (escrow funded) | both parties | payment |
| order_submitted | the client | order_update |
| revision_requested | the doer | order_update |
| order_approved (by the client, or the auto-approve timer) | the doer (+ the client if automatic) | payment |
| order_cancelled (by a party, or the unpaid timer) | the other party (both if automatic) | order_update |
| refund_processed / refund_failed | the client | payment |
| dispute_opened | the other party | order_update |
| dispute_resolved | both parties | order_update |
| withdrawal_paid / withdrawal_failed / withdrawal_reversed | the user who withdrew | payment |
| chat_message (no live session of the recipient on that chat) | the recipient | chat_message |

Every notification's `data` carries `event` and the ids to deep-link to: `orderId`, `gigId`,
`applicationId`, `withdrawalId` where they apply; a move the system made (a timer) has
`automatic: true`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg

from domain.notify import BODY_MAX, TITLE_MAX, notify

if TYPE_CHECKING:
    from hub.db import Conn

Row = Mapping[str, Any] | asyncpg.Record  # a row, or a mapping with the columns used


def money(amount: int, currency: str) -> str:
    """Paise as the app shows them: ₹1,234.50 for INR, else "1234.50 USD"."""
    whole, cents = divmod(int(amount), 100)
    if currency == "INR":
        return f"₹{whole:,}.{cents:02d}"
    return f"{whole}.{cents:02d} {currency}"


@dataclass(frozen=True)
class Notice:
    """One notification to one user."""

    user_id: str
    type: str
    event: str
    title: str
    body: str
    data: Mapping[str, Any]


async def send(conn: Conn, notices: list[Notice], *, push: bool = True) -> None:
    """Write every notice (inbox row, live event and push, as each recipient's preferences allow),
    in ascending user order: each takes its user's feed row lock (hub/feed.py), and transactions
    that take several must take them in one order or deadlock."""
    for n in sorted(notices, key=lambda n: n.user_id):
        data = {"event": n.event, **{k: v for k, v in n.data.items() if v is not None}}
        await notify(conn, n.user_id, n.type, n.title[:TITLE_MAX], n.body[:BODY_MAX], data, push=push)


async def _gig_title(conn: Conn, gig_id: str) -> str:
    title = await conn.fetchval("SELECT title FROM gigs WHERE id = $1", gig_id)
    return str(title) if title else "your gig"


# --- applications (rest/applications.py) ---------------------------------------------------------


async def new_application(conn: Conn, *, gig: Row, application: Row) -> None:
    """The gig's owner hears of a new application, with the bid."""
    title = await _gig_title(conn, str(gig["id"]))
    bid = money(application["bid_amount"], application["currency"])
    data = {"gigId": str(gig["id"]), "applicationId": str(application["id"])}
    await send(conn, [Notice(
        str(gig["client_id"]), "new_application", "new_application",
        f"New application for “{title}”", f"A doer bid {bid}; review it.", data,
    )])  # fmt: skip


async def application_decided(conn: Conn, *, gig: Row, application: Row, accepted: bool) -> None:
    """The doer hears their application was accepted or rejected by the gig's owner."""
    title = await _gig_title(conn, str(gig["id"]))
    data = {"gigId": str(gig["id"]), "applicationId": str(application["id"])}
    if accepted:
        notice = Notice(
            str(application["doer_id"]), "application", "application_accepted", "Application accepted",
            f"Your application for “{title}” was accepted; the order awaits the client's payment.", data,
        )  # fmt: skip
    else:
        notice = Notice(
            str(application["doer_id"]), "application", "application_rejected", "Application declined",
            f"Your application for “{title}” was not accepted.", data,
        )  # fmt: skip
    await send(conn, [notice])


async def applications_auto_rejected(conn: Conn, *, gig: Row, rejected: list[asyncpg.Record]) -> None:
    """Every doer whose pending application was rejected because another one was accepted."""
    if not rejected:
        return
    title = await _gig_title(conn, str(gig["id"]))
    await send(conn, [
        Notice(
            str(r["doer_id"]), "application", "application_rejected", "Application declined",
            f"“{title}” went to another doer.",
            {"gigId": str(gig["id"]), "applicationId": str(r["id"]), "automatic": True},
        )
        for r in rejected
    ])  # fmt: skip


async def application_withdrawn(conn: Conn, *, gig: Row, application: Row) -> None:
    """The gig's owner hears a doer withdrew their application."""
    title = await _gig_title(conn, str(gig["id"]))
    data = {"gigId": str(gig["id"]), "applicationId": str(application["id"])}
    await send(conn, [Notice(
        str(gig["client_id"]), "application", "application_withdrawn", "Application withdrawn",
        f"A doer withdrew their application for “{title}”.", data,
    )])  # fmt: skip


# --- orders (domain/orders.py) -------------------------------------------------------------------

# (title, body) per order move, with {gig}, {amount} and {payout}; keyed by the state machine's
# action. "open" and "fund" say different things to each party: (client text, doer text).
_ORDER: dict[str, tuple[str, str]] = {
    "submit": ("Work submitted", "The work for “{gig}” was delivered; review and approve it."),
    "request_revision": ("Revision requested", "Changes were requested on “{gig}”."),
    "approve": ("Payment released", "“{gig}” was approved: {payout} is in your wallet."),
    "cancel": ("Order cancelled", "“{gig}” was cancelled."),
    "expire": ("Order cancelled", "“{gig}” was cancelled: it was not paid in time."),
    "dispute": ("Order disputed", "A dispute was opened on “{gig}”; support will look into it."),
    "resolve_release": ("Dispute resolved", "The dispute on “{gig}” was resolved: payment released."),
    "resolve_refund": ("Dispute resolved", "The dispute on “{gig}” was resolved: payment refunded."),
    "resolve_split": ("Dispute resolved", "The dispute on “{gig}” was resolved: the payment was split."),
}
_BY_PARTY: dict[str, tuple[str, str, str]] = {
    "open": ("New order", "“{gig}” is waiting for your payment of {amount}.",
             "“{gig}” is waiting for the client's payment; don't start before it is funded."),
    "fund": ("Payment received", "Your payment of {amount} for “{gig}” is held in escrow.",
             "{amount} for “{gig}” is held in escrow; work can start."),
}  # fmt: skip
_EVENT = {
    "open": "order_opened", "fund": "payment_received", "submit": "order_submitted",
    "request_revision": "revision_requested", "approve": "order_approved", "cancel": "order_cancelled",
    "expire": "order_cancelled", "dispute": "dispute_opened", "resolve_release": "dispute_resolved",
    "resolve_refund": "dispute_resolved", "resolve_split": "dispute_resolved",
}  # fmt: skip
_TYPE = {"fund": "payment", "approve": "payment"}


def _recipients(action: str, client: str, doer: str, actor_id: str | None) -> list[str]:
    if action in ("open", "fund", "resolve_release", "resolve_refund", "resolve_split") or actor_id is None:
        return [client, doer]  # what the system did (a timer) both parties hear of
    if action == "approve":
        return [doer]
    return [u for u in (client, doer) if u != actor_id]


async def order_moved(conn: Conn, order: Row, action: str, actor_id: str | None) -> None:
    """Notify an order's parties of one state-machine move (`order` is its row after the move)."""
    if action not in _EVENT:
        return
    client, doer = str(order["client_id"]), str(order["doer_id"])
    gig = await _gig_title(conn, str(order["gig_id"]))
    values = {
        "gig": gig,
        "amount": money(order["amount"], order["currency"]),
        "payout": money(order["doer_payout"], order["currency"]),
    }
    data: dict[str, Any] = {
        "orderId": str(order["id"]),
        "gigId": str(order["gig_id"]),
        "applicationId": str(order["application_id"]),
        "automatic": True if actor_id is None else None,
    }
    notices = []
    for user in _recipients(action, client, doer, actor_id):
        if action in _BY_PARTY:
            title, client_text, doer_text = _BY_PARTY[action]
            body = client_text if user == client else doer_text
        else:
            title, body = _ORDER[action]
        if action == "approve" and actor_id is None:
            title = "Order auto-approved"
            if user == client:
                body = "“{gig}” was approved automatically and the payment released to the doer."
        notices.append(
            Notice(
                user, _TYPE.get(action, "order_update"), _EVENT[action], title, body.format(**values), data
            )
        )
    await send(conn, notices)


async def refund_processed(conn: Conn, order: Row, amount: int) -> None:
    """The client hears their payment for the order came back (`amount` paise)."""
    gig = await _gig_title(conn, str(order["gig_id"]))
    data = {"orderId": str(order["id"]), "gigId": str(order["gig_id"])}
    text = f"{money(amount, order['currency'])} for “{gig}” was refunded to your payment method."
    await send(
        conn, [Notice(str(order["client_id"]), "payment", "refund_processed", "Refund processed", text, data)]
    )


async def refund_failed(conn: Conn, order: Row, amount: int) -> None:
    """The client hears the refund of their payment failed and support will handle it: called by
    domain.refunds.mark_failed (the refund.failed webhook) once per failure, in its transaction."""
    gig = await _gig_title(conn, str(order["gig_id"]))
    data = {"orderId": str(order["id"]), "gigId": str(order["gig_id"])}
    text = f"The refund of {money(amount, order['currency'])} for “{gig}” failed; support will sort it out."
    await send(
        conn, [Notice(str(order["client_id"]), "payment", "refund_failed", "Refund failed", text, data)]
    )


# --- withdrawals (domain/payouts.py) -------------------------------------------------------------

_WITHDRAWAL = {
    "processed": ("withdrawal_paid", "Withdrawal paid", "{amount} was paid out to your bank account."),
    "failed": ("withdrawal_failed", "Withdrawal failed",
               "The payout of {amount} failed{reason}; the money is back in your wallet."),
    "reversed": ("withdrawal_reversed", "Withdrawal reversed",
                 "The payout of {amount} was reversed{reason}; the money is back in your wallet."),
}  # fmt: skip


async def withdrawal_settled(conn: Conn, withdrawal: Row, status: str, reason: str | None) -> None:
    """The user who withdrew hears their payout was paid, failed or reversed (nothing for others)."""
    if status not in _WITHDRAWAL:
        return
    event, title, body = _WITHDRAWAL[status]
    text = body.format(
        amount=money(withdrawal["amount"], withdrawal["currency"]), reason=f" ({reason})" if reason else ""
    )
    data = {"withdrawalId": str(withdrawal["id"])}
    await send(conn, [Notice(str(withdrawal["user_id"]), "payment", event, title, text, data)])


# --- chat (workers/push.py) ----------------------------------------------------------------------


async def chat_messages(conn: Conn, jobs: Sequence[Row]) -> None:
    """The inbox rows and live events of the chat pushes the push sender is about to send (their
    recipients watch no live session of those chats): never a second push, each job is the push.
    One `send`, so the recipients' feed locks are taken in its order."""
    notices: list[Notice] = []
    for job in jobs:
        payload = dict(job["data"] or {})
        data = {
            "orderId": str(job["order_id"]) if job["order_id"] is not None else None,
            "messageId": payload.get("messageId"),
            "senderId": payload.get("senderId"),
            "seq": payload.get("seq"),
        }
        notices.append(
            Notice(str(job["user_id"]), "chat_message", "chat_message", job["title"], job["body"], data)
        )
    await send(conn, notices, push=False)
