-- gigwire trust: reviews between the parties of a completed order, the running totals behind each
-- user's rating, and saved gigs (README "Reviews and trust"; domain/reviews.py, domain/trust.py).

-- One review per party per order: the UNIQUE constraint is what makes two racing reviews of one
-- party come out as one review and one 409.
CREATE TABLE reviews (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    order_id       uuid NOT NULL REFERENCES orders (id),
    reviewer_id    uuid NOT NULL REFERENCES users (id),
    reviewee_id    uuid NOT NULL REFERENCES users (id),
    -- the reviewer's side of the order: 'client' reviews the doer, 'doer' reviews the client
    reviewer_role  text NOT NULL CHECK (reviewer_role IN ('client', 'doer')),
    stars          smallint NOT NULL CHECK (stars BETWEEN 1 AND 5),
    text           text NOT NULL DEFAULT '' CHECK (char_length(text) <= 2000),
    reply          text CHECK (reply IS NULL OR char_length(reply) BETWEEN 1 AND 2000),
    replied_at     timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (order_id, reviewer_id),
    CHECK (reviewer_id <> reviewee_id),
    CHECK ((reply IS NULL) = (replied_at IS NULL))
);
CREATE INDEX reviews_reviewee_idx ON reviews (reviewee_id, created_at DESC, id DESC);

-- users.rating is review_stars / review_count rounded to 2 places, kept in the transaction of each
-- review and edit by relative updates (count + 1, stars + delta), so concurrent reviews of one user
-- add up exactly whatever order they commit in.
ALTER TABLE users
    ADD COLUMN review_count integer NOT NULL DEFAULT 0 CHECK (review_count >= 0),
    ADD COLUMN review_stars bigint NOT NULL DEFAULT 0 CHECK (review_stars >= 0);

CREATE TABLE saved_gigs (
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    gig_id      uuid NOT NULL REFERENCES gigs (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, gig_id)
);
CREATE INDEX saved_gigs_user_idx ON saved_gigs (user_id, created_at DESC, gig_id);

-- GET /api/categories counts open gigs per category: gigs_category_idx (category, status) serves it.
