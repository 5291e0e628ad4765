-- gigwire money: the double-entry ledger, order audit, gateway orders/events/refunds, bank accounts,
-- withdrawals and idempotency keys (seeds/004 sections 3 and 4; DESIGN.md "Money").
-- Amounts are integer minor units (paise) with an ISO currency.

-- Accounts. `id` is the account's name:
--   wallet:<user_id>:<CUR>     a user's withdrawable money (never below zero)
--   escrow:<order_id>          an order's escrow (never below zero; holds `amount` while funded)
--   platform:revenue:<CUR>     platform fees earned
--   platform:clearing:<CUR>    the gateway: negative by what customers paid in and was not refunded
--   platform:payouts:<CUR>     money sent out to bank accounts
-- Wallet and escrow accounts keep a stored `balance`, updated with each transfer in its transaction
-- and guarded by a CHECK, so the database itself refuses to overdraw them under any concurrency.
-- Platform accounts have no stored balance (balance IS NULL): every order touches them, and a
-- locked hot row would serialize all money movement; their balance is the sum of their transfers
-- (view ledger_balances).
CREATE TABLE ledger_accounts (
    id          text PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('wallet', 'escrow', 'revenue', 'clearing', 'payouts')),
    user_id     uuid REFERENCES users (id),
    order_id    uuid REFERENCES orders (id),
    currency    text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    balance     bigint,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind IN ('wallet', 'escrow')) = (balance IS NOT NULL)),
    CHECK (balance IS NULL OR balance >= 0),
    CHECK ((kind = 'wallet') = (user_id IS NOT NULL)),
    CHECK ((kind = 'escrow') = (order_id IS NOT NULL))
);

-- Transfers: money leaves `debit_account` and arrives in `credit_account`. Never updated or deleted;
-- a correction is a new transfer. (kind, reference) is unique: the same business event cannot post twice.
CREATE TABLE ledger_transfers (
    id              bigserial PRIMARY KEY,
    debit_account   text NOT NULL REFERENCES ledger_accounts (id),
    credit_account  text NOT NULL REFERENCES ledger_accounts (id),
    amount          bigint NOT NULL CHECK (amount > 0),
    currency        text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    kind            text NOT NULL CHECK (kind ~ '^[a-z_]{2,40}$'),
    order_id        uuid REFERENCES orders (id),
    reference       text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (debit_account <> credit_account),
    UNIQUE (kind, reference)
);
CREATE INDEX ledger_transfers_debit_idx ON ledger_transfers (debit_account, id);
CREATE INDEX ledger_transfers_credit_idx ON ledger_transfers (credit_account, id);
CREATE INDEX ledger_transfers_order_idx ON ledger_transfers (order_id) WHERE order_id IS NOT NULL;

CREATE FUNCTION gigwire_ledger_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger transfers are never edited; post a correcting transfer';
END $$;
CREATE TRIGGER ledger_transfers_immutable BEFORE UPDATE OR DELETE ON ledger_transfers
    FOR EACH ROW EXECUTE FUNCTION gigwire_ledger_immutable();

-- Every account's balance computed from its transfers (the truth the stored balances must equal).
CREATE VIEW ledger_balances AS
SELECT a.id, a.kind, a.currency, a.balance AS stored_balance,
       COALESCE((SELECT sum(t.amount) FROM ledger_transfers t WHERE t.credit_account = a.id), 0)
     - COALESCE((SELECT sum(t.amount) FROM ledger_transfers t WHERE t.debit_account = a.id), 0)
       AS balance
FROM ledger_accounts a;

-- Orders: who did what when (every transition, with its actor; NULL actor = the system).
CREATE TABLE order_events (
    id               bigserial PRIMARY KEY,
    order_id         uuid NOT NULL REFERENCES orders (id),
    action           text NOT NULL,
    actor_id         uuid REFERENCES users (id),
    previous_status  text,
    status           text NOT NULL,
    escrow_state     text NOT NULL,
    details          jsonb NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_events_order_idx ON order_events (order_id, id);

ALTER TABLE orders ADD COLUMN dispute jsonb;
CREATE INDEX orders_submitted_idx ON orders (submitted_at) WHERE status = 'submitted';
CREATE INDEX orders_unpaid_idx ON orders (created_at) WHERE status = 'pending_payment';

-- Gateway events applied (webhooks): the unique id makes "at most once" a property of the commit.
CREATE TABLE gateway_events (
    event_id     text PRIMARY KEY,
    event_type   text NOT NULL,
    payload      jsonb NOT NULL,
    outcome      text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);

-- Refunds sent to the gateway (cancellation or dispute after funding).
CREATE TABLE gateway_refunds (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    order_id           uuid NOT NULL UNIQUE REFERENCES orders (id),
    payment_id         text NOT NULL,
    gateway_refund_id  text UNIQUE,
    amount             bigint NOT NULL CHECK (amount > 0),
    currency           text NOT NULL,
    status             text NOT NULL DEFAULT 'initiated' CHECK (status IN ('initiated', 'processed')),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- Bank accounts: the number is kept only as its last four digits plus a keyed hash (to refuse
-- duplicates); the full number is handed to the gateway once, when the fund account is created.
CREATE TABLE bank_accounts (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id             uuid NOT NULL REFERENCES users (id),
    holder_name         text NOT NULL CHECK (char_length(holder_name) BETWEEN 1 AND 120),
    ifsc                text NOT NULL CHECK (ifsc ~ '^[A-Z]{4}0[A-Z0-9]{6}$'),
    last4               text NOT NULL CHECK (last4 ~ '^[0-9]{4}$'),
    number_hash         text NOT NULL,
    fund_account_id     text,
    status              text NOT NULL DEFAULT 'unverified'
                        CHECK (status IN ('unverified', 'verifying', 'verified', 'failed')),
    validation_id       text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz
);
CREATE UNIQUE INDEX bank_accounts_number_idx ON bank_accounts (user_id, number_hash) WHERE deleted_at IS NULL;
CREATE INDEX bank_accounts_user_idx ON bank_accounts (user_id, created_at) WHERE deleted_at IS NULL;

-- Withdrawals: wallet -> payouts at request; a failed or reversed payout posts payouts -> wallet.
CREATE TABLE withdrawals (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id          uuid NOT NULL REFERENCES users (id),
    bank_account_id  uuid NOT NULL REFERENCES bank_accounts (id),
    amount           bigint NOT NULL CHECK (amount > 0),
    currency         text NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'processing', 'processed', 'failed', 'reversed')),
    payout_id        text UNIQUE,
    failure_reason   text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX withdrawals_user_idx ON withdrawals (user_id, created_at DESC);

-- Idempotency-Key records, per user and route. A row with no response is a request still running.
CREATE TABLE idempotency_keys (
    user_id       uuid NOT NULL,
    route         text NOT NULL,
    key           text NOT NULL,
    request_hash  text NOT NULL,
    status        integer,
    response      bytea,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, route, key)
);
