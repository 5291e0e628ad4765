-- gigwire: API keys of the server API (/api/server/*), for other backends (issue 16).
--
-- A key is `gw_` + 43 url-safe base64 characters (32 random bytes). Only its SHA-256 is stored
-- (`key_hash`, hex): a random key of 256 bits needs no slow hash. `prefix` (the first 12 characters,
-- `gw_` and 9 of the random part) identifies a key in listings and logs without revealing it.
-- `scopes` are among publish, disconnect, presence, stats. A revoked key (`revoked_at` set) is
-- refused like an unknown one; rows are kept for the record.
CREATE TABLE api_keys (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name          text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    prefix        text NOT NULL CHECK (char_length(prefix) = 12),
    key_hash      text NOT NULL UNIQUE CHECK (key_hash ~ '^[0-9a-f]{64}$'),
    scopes        text[] NOT NULL CHECK (
        cardinality(scopes) >= 1 AND scopes <@ ARRAY['publish', 'disconnect', 'presence', 'stats']
    ),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_keys_prefix_idx ON api_keys (prefix);
