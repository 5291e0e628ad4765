-- gigwire housekeeping (workers/housekeeping.py): each sweep batch finds its rows through an index
-- instead of reading the whole table.

-- OTP codes sent over an hour ago (all of them long expired): created_at rather than expires_at, so
-- the codes of the last hour, expired but kept for the send throttle, are never read.
CREATE INDEX otp_codes_created_idx ON otp_codes (created_at);
-- Refresh tokens expired over a day ago; whether their family is dead is checked per family
-- through refresh_tokens_family_idx (0002).
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at);
-- Idempotency-Key records older than IDEMPOTENCY_KEY_RETENTION_S.
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
