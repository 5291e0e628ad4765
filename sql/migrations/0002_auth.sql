-- gigwire phone-OTP login and refresh-token rotation.

-- One live code per phone: a new send replaces the previous code (and its try count).
-- code_hash is HMAC-SHA256 keyed by a server secret over "phone:code"; the code itself is never stored.
CREATE TABLE otp_codes (
    phone       text PRIMARY KEY CHECK (phone ~ '^\+[1-9][0-9]{7,14}$'),
    code_hash   bytea NOT NULL,
    attempts    smallint NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);

-- Refresh tokens are opaque random strings; only their sha256 is kept. Every login starts a family;
-- each refresh rotates the presented token (rotated_at) and adds the next one to the same family.
-- Presenting a rotated token again is reuse: the whole family is revoked.
CREATE TABLE refresh_tokens (
    token_hash  bytea PRIMARY KEY,
    family_id   uuid NOT NULL,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    rotated_at  timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);
