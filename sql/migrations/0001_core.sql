-- gigwire core tables: users, gigs, applications, orders (seeds/004 sections 1.1 and 4.1),
-- and the transactional outbox every server-originated event goes through.
-- Money is in integer minor units (paise) with an ISO currency. Timestamps are timestamptz;
-- the API renders them as epoch milliseconds.

CREATE TABLE users (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    phone            text NOT NULL UNIQUE CHECK (phone ~ '^\+[1-9][0-9]{7,14}$'),
    -- email, name, university, course and graduation_year are required to complete a profile;
    -- a user created by phone OTP starts without them and fills them in with PATCH /api/users/me.
    email            text CHECK (email IS NULL OR email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$'),
    name             text CHECK (name IS NULL OR char_length(name) BETWEEN 1 AND 100),
    avatar_url       text CHECK (avatar_url IS NULL OR char_length(avatar_url) <= 2048),
    bio              text CHECK (bio IS NULL OR char_length(bio) <= 500),
    university       text CHECK (university IS NULL OR char_length(university) BETWEEN 1 AND 200),
    course           text CHECK (course IS NULL OR char_length(course) BETWEEN 1 AND 200),
    year             smallint CHECK (year IS NULL OR year BETWEEN 1 AND 5),
    graduation_year  smallint CHECK (graduation_year IS NULL OR graduation_year BETWEEN 1950 AND 2100),
    phone_verified   boolean NOT NULL DEFAULT false,
    email_verified   boolean NOT NULL DEFAULT false,
    id_verified      boolean NOT NULL DEFAULT false,
    id_document_url  text CHECK (id_document_url IS NULL OR char_length(id_document_url) <= 2048),
    roles            text[] NOT NULL DEFAULT ARRAY['doer', 'client']
                     CHECK (cardinality(roles) >= 1 AND roles <@ ARRAY['doer', 'client', 'admin']),
    rating           numeric(3, 2) NOT NULL DEFAULT 0 CHECK (rating BETWEEN 0 AND 5),
    -- The three money fields are kept equal to the ledger by the ledger, in the same transaction.
    total_earnings   bigint NOT NULL DEFAULT 0 CHECK (total_earnings >= 0),
    completed_gigs   integer NOT NULL DEFAULT 0 CHECK (completed_gigs >= 0),
    trust_score      smallint NOT NULL DEFAULT 50 CHECK (trust_score BETWEEN 0 AND 100),
    badges           text[] NOT NULL DEFAULT '{}',
    bank_account_id  uuid,
    wallet_balance   bigint NOT NULL DEFAULT 0 CHECK (wallet_balance >= 0),
    pending_balance  bigint NOT NULL DEFAULT 0 CHECK (pending_balance >= 0),
    currency         text NOT NULL DEFAULT 'INR' CHECK (currency ~ '^[A-Z]{3}$'),
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_active_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email)) WHERE email IS NOT NULL;

-- array_to_string is only STABLE in general; on text[] it is immutable, which a generated column needs.
CREATE FUNCTION gigwire_skills_text(skills text[]) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT array_to_string(skills, ' ') $$;

CREATE TABLE gigs (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    client_id           uuid NOT NULL REFERENCES users (id),
    title               text NOT NULL CHECK (char_length(title) BETWEEN 3 AND 200),
    description         text NOT NULL CHECK (char_length(description) BETWEEN 1 AND 10000),
    category            text NOT NULL CHECK (category ~ '^[a-z_]{2,40}$'),
    skills              text[] NOT NULL DEFAULT '{}',
    budget_type         text NOT NULL DEFAULT 'fixed' CHECK (budget_type IN ('fixed', 'hourly', 'milestone')),
    budget_min          bigint NOT NULL CHECK (budget_min > 0),
    budget_max          bigint NOT NULL,
    currency            text NOT NULL DEFAULT 'INR' CHECK (currency ~ '^[A-Z]{3}$'),
    deadline            timestamptz NOT NULL,
    attachments         jsonb NOT NULL DEFAULT '[]',
    -- 'closed': open to nobody's applications until reopened (POST /api/gigs/{id}/close, /reopen).
    status              text NOT NULL DEFAULT 'open'
                        CHECK (status IN ('open', 'closed', 'in_progress', 'completed', 'cancelled')),
    applications_count  integer NOT NULL DEFAULT 0 CHECK (applications_count >= 0),
    views_count         integer NOT NULL DEFAULT 0 CHECK (views_count >= 0),
    is_boosted          boolean NOT NULL DEFAULT false,
    boosted_until       timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    search              tsvector GENERATED ALWAYS AS (
                            setweight(to_tsvector('english', title), 'A')
                            || setweight(to_tsvector('english', gigwire_skills_text(skills)), 'B')
                            || setweight(to_tsvector('english', description), 'C')
                        ) STORED,
    CHECK (budget_max >= budget_min)
);
CREATE INDEX gigs_search_idx ON gigs USING gin (search);
CREATE INDEX gigs_skills_idx ON gigs USING gin (skills);
CREATE INDEX gigs_status_created_idx ON gigs (status, created_at DESC);
CREATE INDEX gigs_category_idx ON gigs (category, status);
CREATE INDEX gigs_client_idx ON gigs (client_id, created_at DESC);

CREATE TABLE applications (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    gig_id      uuid NOT NULL REFERENCES gigs (id) ON DELETE CASCADE,
    doer_id     uuid NOT NULL REFERENCES users (id),
    proposal    text NOT NULL CHECK (char_length(proposal) BETWEEN 1 AND 5000),
    bid_amount  bigint NOT NULL CHECK (bid_amount > 0),
    currency    text NOT NULL DEFAULT 'INR' CHECK (currency ~ '^[A-Z]{3}$'),
    status      text NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'accepted', 'rejected', 'withdrawn')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (gig_id, doer_id)
);
CREATE INDEX applications_doer_idx ON applications (doer_id, created_at DESC);

CREATE TABLE orders (
    id                          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    gig_id                      uuid NOT NULL REFERENCES gigs (id),
    application_id              uuid NOT NULL UNIQUE REFERENCES applications (id),
    client_id                   uuid NOT NULL REFERENCES users (id),
    doer_id                     uuid NOT NULL REFERENCES users (id),
    amount                      bigint NOT NULL CHECK (amount > 0),
    platform_fee                bigint NOT NULL CHECK (platform_fee >= 0),
    doer_payout                 bigint NOT NULL CHECK (doer_payout >= 0),
    currency                    text NOT NULL DEFAULT 'INR' CHECK (currency ~ '^[A-Z]{3}$'),
    escrow_state                text NOT NULL DEFAULT 'awaiting_payment'
                                CHECK (escrow_state IN ('awaiting_payment', 'funded', 'released', 'refunded')),
    payment_gateway_order_id    text UNIQUE,
    payment_gateway_payment_id  text UNIQUE,
    status                      text NOT NULL DEFAULT 'pending_payment'
                                CHECK (status IN ('pending_payment', 'in_progress', 'submitted', 'approved',
                                                  'completed', 'disputed', 'cancelled')),
    deliverables                jsonb NOT NULL DEFAULT '[]',
    revision_requests           jsonb NOT NULL DEFAULT '[]',
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    started_at                  timestamptz,
    submitted_at                timestamptz,
    completed_at                timestamptz,
    CHECK (amount = platform_fee + doer_payout),
    CHECK (client_id <> doer_id)
);
CREATE INDEX orders_client_idx ON orders (client_id, created_at DESC);
CREATE INDEX orders_doer_idx ON orders (doer_id, created_at DESC);
CREATE INDEX orders_status_idx ON orders (status, updated_at);

-- The transactional outbox: a row per server event, written in the transaction of its change;
-- the relay publishes it to `channels` and queues its push, then marks it published.
CREATE TABLE outbox (
    id            bigserial PRIMARY KEY,
    event_type    text NOT NULL CHECK (event_type IN ('ORDER_UPDATE', 'NEW_APPLICATION', 'NOTIFICATION')),
    channels      text[] NOT NULL CHECK (cardinality(channels) >= 1),
    payload       jsonb NOT NULL,
    push          jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz,
    attempts      integer NOT NULL DEFAULT 0
);
CREATE INDEX outbox_pending_idx ON outbox (id) WHERE published_at IS NULL;
