-- gigwire: a refund the gateway failed is recorded, retried and surfaced (issue 13, defect 3).
--
-- gateway_refunds.status gains `failed` (the gateway's refund.failed for the row's current refund:
-- the timers ask again every REFUND_RETRY_AFTER_S) and `needs_attention` (REFUND_MAX_ATTEMPTS
-- requests made and still failed: listed for admins by GET /api/admin/refunds). `owed` is true while
-- the money sits in platform:refunds_pending:<CUR> (booked clearing -> refunds_pending when the
-- refund failed, back refunds_pending -> clearing when a later refund of the row is processed), so
-- the ledger always says the platform owes it to the client. `attempts` counts the refund requests
-- made for the row (the cancellation's is the first); a retry's receipt is derived from the row id
-- and its attempt number. `previous_refund_ids` keeps the gateway ids of earlier attempts.
ALTER TABLE ledger_accounts DROP CONSTRAINT ledger_accounts_kind_check;
ALTER TABLE ledger_accounts ADD CONSTRAINT ledger_accounts_kind_check
    CHECK (kind IN ('wallet', 'escrow', 'revenue', 'clearing', 'payouts', 'refunds_pending'));

ALTER TABLE gateway_refunds DROP CONSTRAINT gateway_refunds_status_check;
ALTER TABLE gateway_refunds ADD CONSTRAINT gateway_refunds_status_check
    CHECK (status IN ('initiated', 'processed', 'failed', 'needs_attention'));
ALTER TABLE gateway_refunds
    ADD COLUMN owed boolean NOT NULL DEFAULT false,
    ADD COLUMN attempts integer NOT NULL DEFAULT 1 CHECK (attempts >= 1),
    ADD COLUMN failure_reason text,
    ADD COLUMN previous_refund_ids text[] NOT NULL DEFAULT '{}',
    -- A failed refund's money is owed until a later refund is processed, never while processed.
    ADD CONSTRAINT gateway_refunds_owed_check
        CHECK ((status IN ('failed', 'needs_attention')) <= owed AND NOT (owed AND status = 'processed'));

-- A stray payment's refund (a payment that cannot fund its order, rest/payments.py) is a row too,
-- kind `stray`, so its failure is recorded and retried like an order's: one per payment. An order
-- keeps one refund of its own funding payment (kind `order`).
ALTER TABLE gateway_refunds
    ADD COLUMN kind text NOT NULL DEFAULT 'order' CHECK (kind IN ('order', 'stray'));
ALTER TABLE gateway_refunds DROP CONSTRAINT gateway_refunds_order_id_key;
CREATE UNIQUE INDEX gateway_refunds_order_key ON gateway_refunds (order_id) WHERE kind = 'order';
CREATE UNIQUE INDEX gateway_refunds_stray_key ON gateway_refunds (payment_id) WHERE kind = 'stray';

-- The timers' retry sweep and the admin list; the webhook's look-up by payment.
CREATE INDEX gateway_refunds_failed_idx ON gateway_refunds (updated_at) WHERE status = 'failed';
CREATE INDEX gateway_refunds_owed_idx ON gateway_refunds (updated_at) WHERE owed;
CREATE INDEX gateway_refunds_payment_idx ON gateway_refunds (payment_id);
