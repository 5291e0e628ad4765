-- gigwire money fixes: a withdrawal remembers the Idempotency-Key that created it.
-- The withdraw handler commits the withdrawal and its debit before asking the gateway for the
-- payout; if anything fails after that commit, the key's idempotency record is released and the
-- client retries with the same key. The key on the row (unique per user) makes that retry find
-- the withdrawal already made instead of debiting and paying out a second time.
-- Rows from before this migration keep NULL (NULLs never conflict).
ALTER TABLE withdrawals ADD COLUMN idempotency_key text;
ALTER TABLE withdrawals
    ADD CONSTRAINT withdrawals_user_idempotency_key_key UNIQUE (user_id, idempotency_key);
