-- gigwire account lifecycle (issue 15): Google sign-in, email verification codes, the primary bank
-- account, and account deletion by anonymisation.

-- A user signed in with Google has no phone until they verify one: phone becomes optional, and a
-- user has a login (phone or Google) unless the account was deleted. google_sub is Google's
-- stable subject id ("sub"); the email links a Google login to an existing account once.
ALTER TABLE users ALTER COLUMN phone DROP NOT NULL;
ALTER TABLE users
    ADD COLUMN google_sub text UNIQUE CHECK (google_sub IS NULL OR char_length(google_sub) BETWEEN 1 AND 255),
    -- Set by DELETE /api/users/me: the row stays (ledger, orders and messages point to it) with its
    -- personal data erased; a token of it is refused as if the row were gone (rest/http.py,
    -- hub/revoke.py).
    ADD COLUMN deleted_at timestamptz,
    ADD CONSTRAINT users_login_check
        CHECK (phone IS NOT NULL OR google_sub IS NOT NULL OR deleted_at IS NOT NULL);

-- One live email code per user: a new send replaces the previous one (and its try count). The code
-- is kept as HMAC-SHA256 over "email:<user>:<address>:<code>" under a server key, never in clear.
-- `email` is the address the code was sent to: a code proves that address only, so changing the
-- email after the send makes the code useless.
CREATE TABLE email_codes (
    user_id     uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    email       text NOT NULL,
    code_hash   bytea NOT NULL,
    attempts    smallint NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);

-- bankAccountId names the user's primary bank account: verified and not removed. It is set when the
-- first account is verified, changed by POST /api/bank-accounts/{id}/primary, and moved to the
-- oldest other verified account (or cleared) when the primary is removed: rest/bank_primary.py, in
-- the transaction of each change.
UPDATE users u SET bank_account_id = NULL
 WHERE bank_account_id IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM bank_accounts b WHERE b.id = u.bank_account_id AND b.user_id = u.id
                   AND b.status = 'verified' AND b.deleted_at IS NULL);
UPDATE users u SET bank_account_id = (
        SELECT b.id FROM bank_accounts b WHERE b.user_id = u.id AND b.status = 'verified'
           AND b.deleted_at IS NULL ORDER BY b.created_at, b.id LIMIT 1)
 WHERE bank_account_id IS NULL;
ALTER TABLE users ADD CONSTRAINT users_bank_account_fkey
    FOREIGN KEY (bank_account_id) REFERENCES bank_accounts (id);
