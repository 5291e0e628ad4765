"""The double-entry ledger: every movement of money is one transfer between two accounts, posted in
the caller's transaction together with the change that caused it.

Accounts are named (see sql/migrations/0004_money.sql): `wallet:<user>:<CUR>`, `escrow:<order>`,
`platform:revenue|clearing|payouts|refunds_pending:<CUR>` (refunds_pending: refunds the gateway
failed, owed to the clients until a later refund is processed; 0014_refund_failures.sql).
Wallet and escrow accounts keep a stored balance that the database refuses to take below zero
(CHECK), so no interleaving of requests can overdraw one.
The users columns wallet_balance, pending_balance (money in escrow on funded orders where the user
is the doer) and total_earnings (sum of escrow releases received) are updated with the transfer.

Lock order, to keep concurrent postings free of deadlocks: within a transfer the stored account rows
in id order, then the users rows in id order; platform accounts are never locked."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import asyncpg

from domain.errors import DomainError

if TYPE_CHECKING:
    from hub.db import Conn

PlatformKind = Literal["revenue", "clearing", "payouts", "refunds_pending"]


class InsufficientFunds(DomainError):
    """The debited wallet holds less than the amount (conflict, HTTP 409; details name both figures)."""

    def __init__(self, account: str, available: int, required: int) -> None:
        super().__init__(
            "conflict",
            f"The wallet holds {available} but {required} is needed; add funds or ask for less.",
            details={"reason": "insufficient_funds", "available": available, "required": required},
        )
        self.account = account


def wallet_account(user_id: str, currency: str) -> str:
    """The id of a user's wallet account in `currency`."""
    return f"wallet:{user_id}:{currency}"


def escrow_account(order_id: str) -> str:
    """The id of an order's escrow account."""
    return f"escrow:{order_id}"


def platform_account(kind: PlatformKind, currency: str) -> str:
    """The id of a platform account (revenue, gateway clearing, payouts, refunds pending) in `currency`."""
    return f"platform:{kind}:{currency}"


def _stored(account: str) -> bool:
    return account.startswith(("wallet:", "escrow:"))


async def ensure_account(conn: Conn, account: str, currency: str) -> None:
    """Create the account named `account` if it does not exist yet (idempotent, race-safe)."""
    parts = account.split(":")
    kind, user_id, order_id, balance = parts[0], None, None, None
    if kind == "wallet":
        user_id, balance = parts[1], 0
    elif kind == "escrow":
        kind, order_id, balance = "escrow", parts[1], 0
    elif kind == "platform":
        kind = parts[1]
    else:
        raise ValueError(f"not an account name: {account!r}")
    await conn.execute(
        "INSERT INTO ledger_accounts (id, kind, user_id, order_id, currency, balance)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
        account,
        kind,
        user_id,
        order_id,
        currency,
        balance,
    )


async def _move(conn: Conn, account: str, delta: int, currency: str) -> None:
    """Apply `delta` to a stored account; a debit that would go below zero raises InsufficientFunds."""
    for _ in range(2):
        row = await conn.fetchrow(
            "UPDATE ledger_accounts SET balance = balance + $2"
            " WHERE id = $1 AND currency = $3 AND balance + $2 >= 0 RETURNING balance",
            account,
            delta,
            currency,
        )
        if row is not None:
            return
        existing = await conn.fetchrow("SELECT balance, currency FROM ledger_accounts WHERE id = $1", account)
        if existing is None:
            await ensure_account(conn, account, currency)
            continue
        if existing["currency"] != currency:
            raise ValueError(f"{account} holds {existing['currency']}, not {currency}")
        raise InsufficientFunds(account, int(existing["balance"]), -delta)
    raise InsufficientFunds(account, 0, -delta)


async def transfer(
    conn: Conn,
    *,
    debit: str,
    credit: str,
    amount: int,
    currency: str,
    kind: str,
    reference: str,
    order_id: str | None = None,
) -> int:
    """Move `amount` (> 0, minor units) from `debit` to `credit` inside the caller's transaction and
    return the transfer id. Raises InsufficientFunds when a wallet or escrow would go below zero
    (the caller's transaction must then be rolled back: let the error propagate), and
    asyncpg.UniqueViolationError when (kind, reference) was already posted."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValueError(f"a transfer amount is a positive integer, got {amount!r}")
    if debit == credit:
        raise ValueError("a transfer needs two different accounts")
    deltas = {debit: -amount, credit: amount}
    for account in sorted(deltas):
        if _stored(account):
            await _move(conn, account, deltas[account], currency)
        else:
            await ensure_account(conn, account, currency)
    transfer_id: int = await conn.fetchval(
        "INSERT INTO ledger_transfers (debit_account, credit_account, amount, currency, kind, order_id,"
        " reference) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        debit,
        credit,
        amount,
        currency,
        kind,
        order_id,
        reference,
    )
    await _mirror_users(conn, deltas, currency, kind)
    return transfer_id


async def _mirror_users(conn: Conn, deltas: dict[str, int], currency: str, kind: str) -> None:
    """Keep users.wallet_balance / pending_balance / total_earnings equal to the ledger."""
    changes: dict[str, tuple[int, int, int]] = {}  # user -> (wallet, pending, earnings)
    for account, delta in deltas.items():
        if account.startswith("wallet:"):
            user_id = account.split(":")[1]
            w, p, e = changes.get(user_id, (0, 0, 0))
            changes[user_id] = (w + delta, p, e + (delta if kind == "release" else 0))
        elif account.startswith("escrow:"):
            doer = await conn.fetchval(
                "SELECT doer_id::text FROM orders WHERE id = $1", account.split(":")[1]
            )
            if doer is not None:
                w, p, e = changes.get(doer, (0, 0, 0))
                changes[doer] = (w, p + delta, e)
    for user_id in sorted(changes):
        w, p, e = changes[user_id]
        if w or p or e:
            await conn.execute(
                "UPDATE users SET wallet_balance = wallet_balance + $2,"
                " pending_balance = pending_balance + $3, total_earnings = total_earnings + $4"
                " WHERE id = $1 AND currency = $5",
                user_id,
                w,
                p,
                e,
                currency,
            )


async def balance(conn: Conn | asyncpg.Pool, account: str) -> int:
    """The balance of one account (stored for wallets and escrow, summed for platform accounts)."""
    if _stored(account):
        value = await conn.fetchval("SELECT balance FROM ledger_accounts WHERE id = $1", account)
    else:
        value = await conn.fetchval("SELECT balance FROM ledger_balances WHERE id = $1", account)
    return int(value or 0)


async def charge_wallet(
    conn: Conn, *, user_id: str, amount: int, currency: str, reason: str, reference: str
) -> None:
    """Charge a user's wallet for a platform service (e.g. a gig boost): wallet -> platform revenue,
    inside the caller's transaction. `reason` is the transfer kind (lowercase, e.g. "gig_boost");
    `reference` makes it unique (the same (reason, reference) is refused by the database).
    Raises InsufficientFunds (DomainError conflict, details.available/required) when the balance is
    short, and DomainError unprocessable for a non-positive amount."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise DomainError("unprocessable", "A charge is a positive whole number of minor units.")
    await transfer(
        conn,
        debit=wallet_account(user_id, currency),
        credit=platform_account("revenue", currency),
        amount=amount,
        currency=currency,
        kind=reason,
        reference=reference,
    )


async def audit(conn: Conn | asyncpg.Pool) -> list[str]:
    """Every broken ledger invariant, as sentences (empty when all hold): balances sum to zero per
    currency; stored balances equal their transfers; no stored balance below zero; users columns equal
    the ledger; each order's escrow balance matches its escrow_state (orders opened through open_order, which
    creates the escrow account; rows arranged by hand for non-money tests are not judged); the refunds
    pending account holds exactly the refunds the gateway failed and no later refund returned."""
    problems: list[str] = []
    for r in await conn.fetch(
        "SELECT currency, sum(balance) AS total FROM ledger_balances"
        " GROUP BY currency HAVING sum(balance) <> 0"
    ):
        problems.append(f"{r['currency']} balances sum to {r['total']}, not 0")
    for r in await conn.fetch(
        "SELECT id, stored_balance, balance FROM ledger_balances"
        " WHERE stored_balance IS NOT NULL AND (stored_balance <> balance OR balance < 0)"
    ):
        problems.append(f"{r['id']}: stored {r['stored_balance']}, transfers say {r['balance']}")
    rows: list[Any] = await conn.fetch(
        "SELECT u.id, u.wallet_balance, u.pending_balance, u.total_earnings,"
        " COALESCE((SELECT a.balance FROM ledger_accounts a"
        "   WHERE a.id = 'wallet:' || u.id || ':' || u.currency), 0) AS w,"
        " COALESCE((SELECT sum(a.balance) FROM ledger_accounts a JOIN orders o ON a.order_id = o.id"
        "   WHERE o.doer_id = u.id AND a.currency = u.currency), 0) AS p,"
        " COALESCE((SELECT sum(t.amount) FROM ledger_transfers t"
        "   WHERE t.credit_account = 'wallet:' || u.id || ':' || u.currency AND t.kind = 'release'), 0) AS e"
        " FROM users u"
    )
    for r in rows:
        if (r["wallet_balance"], r["pending_balance"], r["total_earnings"]) != (r["w"], r["p"], r["e"]):
            problems.append(
                f"user {r['id']}: columns {r['wallet_balance']}/{r['pending_balance']}/{r['total_earnings']}"
                f" but ledger {r['w']}/{r['p']}/{r['e']}"
            )
    for r in await conn.fetch(
        "SELECT o.id, o.escrow_state, o.amount, COALESCE(a.balance, 0) AS held FROM orders o"
        " JOIN ledger_accounts a ON a.id = 'escrow:' || o.id"
        " WHERE a.balance <> CASE WHEN o.escrow_state = 'funded' THEN o.amount ELSE 0 END"
    ):
        problems.append(f"order {r['id']}: escrow {r['escrow_state']} but account holds {r['held']}")
    for r in await conn.fetch(
        "SELECT COALESCE(o.currency, a.currency) AS currency, COALESCE(a.balance, 0) AS held,"
        " COALESCE(o.owed, 0) AS owed"
        " FROM (SELECT currency, sum(amount) AS owed FROM gateway_refunds WHERE owed GROUP BY currency) o"
        " FULL JOIN (SELECT currency, balance FROM ledger_balances WHERE kind = 'refunds_pending') a"
        " ON a.currency = o.currency WHERE COALESCE(a.balance, 0) <> COALESCE(o.owed, 0)"
    ):
        problems.append(f"refunds pending {r['currency']}: holds {r['held']} but {r['owed']} is owed")
    return problems
