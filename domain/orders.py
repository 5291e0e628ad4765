"""Orders with escrow: opening one, and the one state-machine entry `transition`.

Every transition runs in the caller's transaction with the order row locked (SELECT ... FOR UPDATE),
so concurrent transitions of one order serialize and each sees the state the previous one left.
Each writes an order_events audit row, an ORDER_UPDATE outbox event to both parties, the parties'
notifications (domain/notices.py) and moves the gig along (domain/gig_lifecycle.py); approval and
dispute resolution also recompute both parties' trust (domain/trust.py, their rows locked in id
order before the ledger touches either). The table of legal moves is domain/order_states.py;
/api/orders is rest/orders.py. Refusals are DomainErrors (codes as in rest.errors.STATUS)."""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any, cast

import asyncpg

from domain import audit, ledger, notices, refunds, trust
from domain.errors import DomainError
from domain.gateway import Gateway, GatewayError, RefundUnconfirmed, refund_once
from domain.gig_lifecycle import follow_order
from domain.order_states import ACTION_ROLES, ESCROW_AFTER, TABLE, Order, Role, load_order
from hub import outbox
from hub.clock import epoch_ms

if TYPE_CHECKING:
    from hub.db import Conn

log = logging.getLogger("gigwire.orders")

__all__ = ["PUBLIC_ACTIONS", "Order", "open_order", "transition"]

# The moves that change an input of a party's trust score (domain/trust.py): both are recomputed.
TRUST_ACTIONS = frozenset({"approve", "resolve_release", "resolve_refund", "resolve_split"})
# The actions callers name; "resolve" takes outcome="release"|"refund"|"split" (split: doer_amount).
PUBLIC_ACTIONS = ("fund", "submit", "request_revision", "approve", "cancel", "dispute", "resolve", "expire")


async def open_order(
    conn: Conn,
    *,
    gig_id: str,
    application_id: str,
    client_id: str,
    doer_id: str,
    amount: int,
    currency: str,
    actor_id: str,
    fee_bps: int,
) -> Order:
    """Open an order inside the caller's transaction: status pending_payment, escrow awaiting_payment,
    platform_fee = amount * fee_bps // 10000, doer_payout = amount - fee; creates its (empty) escrow
    account, an audit row and the ORDER_UPDATE event to both users and the order channel. Returns the
    Order, whose id is `application_id` (the application's chat thread becomes the order's). Raises
    DomainError unprocessable for a non-positive amount or fee_bps outside
    0..10000, and lets asyncpg.UniqueViolationError through when the application already has one."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise DomainError("unprocessable", "An order amount is a positive whole number of minor units.")
    if not 0 <= fee_bps <= 10_000:
        raise DomainError("unprocessable", "The platform fee must be 0 to 10000 basis points.")
    fee = amount * fee_bps // 10_000
    row = await conn.fetchrow(
        # The order takes its application's id: the application's pre-order chat thread (chat id =
        # application id, hub/threads.py) continues as the order's chat with no copy or renumbering.
        "INSERT INTO orders (id, gig_id, application_id, client_id, doer_id, amount, platform_fee,"
        " doer_payout, currency) VALUES ($2, $1, $2, $3, $4, $5, $6, $7, $8) RETURNING *",
        gig_id,
        application_id,
        client_id,
        doer_id,
        amount,
        fee,
        amount - fee,
        currency,
    )
    assert row is not None
    order_id = str(row["id"])
    await ledger.ensure_account(conn, ledger.escrow_account(order_id), currency)
    await _record(conn, row, "open", actor_id, None, {})
    return load_order(row)


def _role_set(order: asyncpg.Record, actor_id: str | None, is_admin: bool) -> set[Role]:
    if actor_id is None:
        return {"system"}
    roles: set[Role] = set()
    if actor_id == str(order["client_id"]):
        roles.add("client")
    if actor_id == str(order["doer_id"]):
        roles.add("doer")
    if is_admin:
        roles.add("admin")
    return roles


async def transition(conn: Conn, order_id: str, action: str, actor_id: str | None, **args: Any) -> Order:
    """Apply `action` to the order inside the caller's transaction and return the new Order.

    actor_id None is the system (timers: "approve" auto-approves a submitted order, "expire" cancels
    an unpaid one). Arguments by action: submit deliverables=[{url, description?}]; request_revision
    reason; dispute reason; resolve outcome="release"|"refund"|"split", note?, doer_amount (split:
    paise of the amount awarded to the doer, 1 to amount - 1); cancel reason?; fund
    payment_id (and gateway_order_id to check). is_admin=True lets an admin resolve; gateway=<Gateway>
    is needed by moves that refund (cancel after funding, resolve with refund).

    DomainError codes (HTTP status): not_found (404) when the order does not exist or the actor is
    neither a participant nor an admin; forbidden (403) when the actor's role can never make this
    action; conflict (409, details: status, escrowState) when the action is not legal from the
    current state; bad_gateway (502) when the gateway refuses a refund or its outcome is unknown, and
    unavailable (503) when no refund can be sent (nothing changed in either case)."""
    is_admin = bool(args.pop("is_admin", False))
    if action == "resolve":
        outcome = args.get("outcome")
        if outcome not in ("release", "refund", "split"):
            raise DomainError("bad_request", "Resolve with outcome 'release', 'refund' or 'split'.")
        action = f"resolve_{outcome}"
    if action not in ACTION_ROLES:
        raise DomainError("bad_request", f"Unknown order action {action!r}.")
    order = await conn.fetchrow("SELECT * FROM orders WHERE id = $1 FOR UPDATE", order_id)
    roles = _role_set(order, actor_id, is_admin) if order is not None else set()
    if order is None or not roles:
        raise DomainError("not_found", f"No order {order_id} of yours.")
    if not roles & ACTION_ROLES[action]:
        who = " or ".join(sorted(ACTION_ROLES[action]))
        raise DomainError("forbidden", f"Only the {who} can {action.replace('_', ' ')} an order.")
    move = TABLE.get((order["status"], action))
    if move is None or not roles & move.roles:
        raise DomainError(
            "conflict",
            f"An order in status {order['status']} cannot {action.replace('_', ' ')}.",
            details={"status": order["status"], "escrowState": order["escrow_state"]},
        )
    parties = (str(order["client_id"]), str(order["doer_id"]))
    if action in TRUST_ACTIONS and move.effect not in ("refund", "split"):
        await trust.lock_parties(conn, *parties)  # before the ledger touches the doer's row
    sets: dict[str, Any] = {"status": move.status}
    escrow_after = ESCROW_AFTER[move.effect]
    if escrow_after is not None:
        sets["escrow_state"] = escrow_after
    details = await _effects(conn, order, action, move.effect, actor_id, sets, args)
    assignments = ", ".join(f"{column} = ${i}" for i, column in enumerate(sets, start=2))
    row = await conn.fetchrow(
        f"UPDATE orders SET {assignments}, updated_at = now() WHERE id = $1 RETURNING *",
        order_id,
        *sets.values(),
    )
    assert row is not None
    await _record(conn, row, action, actor_id, order["status"], details)
    await follow_order(conn, row, action)
    if action in TRUST_ACTIONS:  # completed orders and disputes lost are inputs of the trust rule
        for user_id in parties:
            await trust.recompute(conn, user_id)
    if action.startswith("resolve_") and actor_id is not None:
        # An admin's act: its audit row commits with it, whichever route asked (0019_admin.sql).
        before = {"status": order["status"], "escrowState": order["escrow_state"]}
        after = {"status": row["status"], "escrowState": row["escrow_state"], **details}
        await audit.record(
            conn, actor_id=actor_id, action="order.resolve_dispute", target_type="order", target_id=order_id,
            before=before, after=after, reason=args.get("note"),
        )  # fmt: skip
    return load_order(row)


async def _effects(
    conn: Conn,
    order: asyncpg.Record,
    action: str,
    effect: str | None,
    actor_id: str | None,
    sets: dict[str, Any],
    args: dict[str, Any],
) -> dict[str, Any]:
    """Post the move's ledger transfers and fill in the columns it changes; return audit details."""
    order_id, currency, now = str(order["id"]), order["currency"], dt.datetime.now(dt.UTC)
    escrow = ledger.escrow_account(order_id)
    details: dict[str, Any] = {}
    if effect == "fund":
        payment_id = str(args["payment_id"])
        await ledger.transfer(
            conn, debit=ledger.platform_account("clearing", currency), credit=escrow, amount=order["amount"],
            currency=currency, kind="fund", reference=order_id, order_id=order_id,
        )  # fmt: skip
        sets.update(payment_gateway_payment_id=payment_id, started_at=now)
        details["paymentId"] = payment_id
    elif effect == "release":
        doer = str(order["doer_id"])
        await ledger.transfer(
            conn, debit=escrow, credit=ledger.wallet_account(doer, currency), amount=order["doer_payout"],
            currency=currency, kind="release", reference=order_id, order_id=order_id,
        )  # fmt: skip
        if order["platform_fee"] > 0:
            await ledger.transfer(
                conn, debit=escrow, credit=ledger.platform_account("revenue", currency),
                amount=order["platform_fee"], currency=currency, kind="fee", reference=order_id,
                order_id=order_id,
            )  # fmt: skip
        await conn.execute("UPDATE users SET completed_gigs = completed_gigs + 1 WHERE id = $1", doer)
        sets["completed_at"] = now
    elif effect == "split":
        await _split(conn, order, args, details)
        await conn.execute(
            "UPDATE users SET completed_gigs = completed_gigs + 1 WHERE id = $1", order["doer_id"]
        )
        sets["completed_at"] = now
    elif effect == "refund":
        details["refundId"] = await _refund(conn, order, args.get("gateway"))
        if action in TRUST_ACTIONS:  # after the gateway's answer: no user row held over HTTP
            await trust.lock_parties(conn, str(order["client_id"]), str(order["doer_id"]))
        await ledger.transfer(
            conn, debit=escrow, credit=ledger.platform_account("clearing", currency), amount=order["amount"],
            currency=currency, kind="refund", reference=order_id, order_id=order_id,
        )  # fmt: skip
    if action == "submit":
        round_no = 1 + max((d.get("round", 0) for d in order["deliverables"]), default=0)
        new = [{**d, "round": round_no, "submittedAt": epoch_ms(now)} for d in args["deliverables"]]
        sets.update(deliverables=[*order["deliverables"], *new], submitted_at=now)
    elif action == "request_revision":
        entry = {"reason": args["reason"], "requestedAt": epoch_ms(now), "requestedBy": actor_id}
        sets["revision_requests"] = [*order["revision_requests"], entry]
    elif action == "dispute":
        sets["dispute"] = {
            "reason": args["reason"], "openedBy": actor_id, "openedAt": epoch_ms(now),
            "previousStatus": order["status"],
        }  # fmt: skip
    elif action.startswith("resolve_"):
        resolution = {"outcome": action.removeprefix("resolve_"), "note": args.get("note"),
                      "resolvedBy": actor_id, "resolvedAt": epoch_ms(now)}  # fmt: skip
        if effect == "split":
            resolution.update(doerAmount=details["doerAmount"], refundAmount=details["refundAmount"])
        sets["dispute"] = {**(order["dispute"] or {}), **resolution}
    for key in ("reason", "note", "outcome"):
        if args.get(key) is not None:
            details[key] = args[key]
    return details


async def _split(conn: Conn, order: asyncpg.Record, args: dict[str, Any], details: dict[str, Any]) -> None:
    """An admin's split of a disputed order's escrow: `doer_amount` of the amount is the doer's (the
    platform fee taken from it in the order's proportion, rounded down), the rest is refunded to the
    client through the gateway. The three transfers empty the escrow exactly."""
    amount, currency, order_id = order["amount"], order["currency"], str(order["id"])
    share = args.get("doer_amount")
    if isinstance(share, bool) or not isinstance(share, int) or not 1 <= share < amount:
        raise DomainError(
            "unprocessable",
            f"A split gives the doer 1 to {amount - 1} paise of the {amount}; the rest is refunded.",
            details={"amount": amount},
        )  # fmt: skip
    fee = order["platform_fee"] * share // amount
    refund = amount - share
    details.update(doerAmount=share, refundAmount=refund, fee=fee)
    details["refundId"] = await _refund(conn, order, args.get("gateway"), refund)
    # After the gateway's answer (no user row held over HTTP), before the ledger touches the doer's row.
    await trust.lock_parties(conn, str(order["client_id"]), str(order["doer_id"]))
    escrow = ledger.escrow_account(order_id)
    await ledger.transfer(
        conn, debit=escrow, credit=ledger.wallet_account(str(order["doer_id"]), currency), amount=share - fee,
        currency=currency, kind="release", reference=order_id, order_id=order_id,
    )  # fmt: skip
    if fee > 0:
        await ledger.transfer(
            conn, debit=escrow, credit=ledger.platform_account("revenue", currency), amount=fee,
            currency=currency, kind="fee", reference=order_id, order_id=order_id,
        )  # fmt: skip
    await ledger.transfer(
        conn, debit=escrow, credit=ledger.platform_account("clearing", currency), amount=refund,
        currency=currency, kind="refund", reference=order_id, order_id=order_id,
    )  # fmt: skip


async def _refund(
    conn: Conn, order: asyncpg.Record, gateway: Gateway | None, amount: int | None = None
) -> str:
    """Have the gateway refund the order's payment (once: a refund it already holds from an earlier
    attempt whose answer was lost is used, not repeated) and record it. The order row is locked, so
    two cancellations cannot both get here. A definite refusal rolls the whole transition back; an
    unknown outcome (timeout, 5xx) is checked against the gateway's refunds, and only when the
    refund cannot be seen does the transition roll back, telling the caller to retry."""
    payment_id = order["payment_gateway_payment_id"]
    amount = order["amount"] if amount is None else amount
    if gateway is None or payment_id is None:
        raise DomainError("unavailable", "The refund cannot be sent now (no gateway or payment); try again.")
    try:
        result = await refund_once(
            gateway, payment_id=payment_id, amount=amount, receipt=f"refund_{order['id']}"
        )
    except RefundUnconfirmed as exc:
        log.error("refund outcome unknown", extra={"order": str(order["id"]), "payment": payment_id})
        raise DomainError(
            "bad_gateway",
            f"The refund's outcome could not be confirmed ({exc}); the order is unchanged for now."
            " Retry the cancellation: it finds a refund the gateway made and never refunds twice.",
        ) from None
    except GatewayError as exc:
        raise DomainError(
            "bad_gateway", f"The payment gateway refused the refund ({exc}); nothing changed."
        ) from None
    processed = result.status == "processed"
    await conn.execute(
        "INSERT INTO gateway_refunds (order_id, payment_id, gateway_refund_id, amount, currency, status)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        order["id"],
        payment_id,
        result.id,
        amount,
        order["currency"],
        "processed" if processed else "initiated",
    )
    if not processed:
        # The gateway's refund.processed webhook may have come before this commit: apply it now.
        processed = bool(
            await conn.fetchval(
                "UPDATE gateway_refunds SET status = 'processed' WHERE gateway_refund_id = $1 AND EXISTS ("
                " SELECT 1 FROM gateway_events WHERE event_type = 'refund.processed'"
                " AND payload #>> '{payload,refund,entity,id}' = $1) RETURNING 1",
                result.id,
            )
        )
    if processed:  # else the refund.processed webhook tells the client (rest/webhooks.py)
        await notices.refund_processed(conn, order, amount)
    elif result.status == "failed":  # failed at once: recorded, owed and retried like a later failure
        await refunds.mark_failed(conn, result.id, "the gateway failed the refund at once")
    return result.id


async def _record(
    conn: Conn,
    row: asyncpg.Record,
    action: str,
    actor_id: str | None,
    previous: str | None,
    details: dict[str, Any],
) -> None:
    """The audit row, the ORDER_UPDATE event and the parties' notifications of one transition."""
    await conn.execute(
        "INSERT INTO order_events (order_id, action, actor_id, previous_status, status, escrow_state,"
        " details)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        row["id"],
        action,
        actor_id,
        previous,
        row["status"],
        row["escrow_state"],
        details,
    )
    order_id = str(row["id"])
    await outbox.enqueue(
        cast(asyncpg.Connection, conn),  # a pool's proxy is a Connection at runtime
        "ORDER_UPDATE",
        {
            "orderId": order_id,
            "status": row["status"],
            "escrowState": row["escrow_state"],
            "previousStatus": previous,
            "actorId": actor_id,
            "updatedAt": epoch_ms(row["updated_at"]),
        },
        # Both parties' user feeds reach every session subscribed to the order's chat (only the
        # parties may subscribe), so the order channel would only deliver each session a copy.
        user_ids=[str(row["client_id"]), str(row["doer_id"])],
    )
    await notices.order_moved(conn, row, action, actor_id)
