-- gigwire's durable user feed: every event addressed to a user (ORDER_UPDATE, NEW_APPLICATION,
-- NOTIFICATION) is stored with a per-user gapless feed_seq in the transaction of its change, before
-- the relay publishes it, so a client resumes from the last feedSeq it saw and a hub refills its
-- live sessions from here after a broker outage. Kept FEED_RETENTION (default 7 days).

-- The user's last feed_seq. Bumping it takes the row lock, so a user's events commit in feed_seq
-- order and every seq up to last_seq is committed once the bump's transaction is.
CREATE TABLE feed_sequences (
    user_id   uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    last_seq  bigint NOT NULL CHECK (last_seq >= 1)
);

CREATE TABLE feed (
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    seq         bigint NOT NULL CHECK (seq >= 1),
    type        text NOT NULL,
    data        jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, seq)
);
-- The retention sweep (workers/housekeeping.py) deletes by age.
CREATE INDEX feed_created_idx ON feed (created_at);

-- An outbox row's feed_seqs[i] is the feed_seq of channels[i] when that channel is a user's feed
-- (NULL for an order channel and for control events). SESSION_REVOKED is a control event: it tells
-- every hub to close the sessions of a login (logout, a revoked refresh-token family) or of a user
-- (deleted, banned); it is not stored in the feed.
ALTER TABLE outbox ADD COLUMN feed_seqs bigint[];
ALTER TABLE outbox DROP CONSTRAINT outbox_event_type_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_event_type_check
    CHECK (event_type IN ('ORDER_UPDATE', 'NEW_APPLICATION', 'NOTIFICATION', 'SESSION_REVOKED'));

-- A user row that goes (deleted by an operator, or by account deletion) ends that user's sessions on
-- every hub: the same control event as a logout, through the outbox.
CREATE FUNCTION gigwire_user_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox (event_type, channels, payload)
    VALUES ('SESSION_REVOKED', ARRAY['user:' || OLD.id::text],
            jsonb_build_object('userId', OLD.id::text, 'reason', 'account_deleted'));
    PERFORM pg_notify('gigwire_outbox', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER users_gone AFTER DELETE ON users FOR EACH ROW EXECUTE FUNCTION gigwire_user_gone();

-- Notification preferences get a third channel: `live` (the NOTIFICATION event to connected
-- sessions) beside the inbox (in_app) and push. No row still means all three on. IF NOT EXISTS:
-- 0010_notices.sql (F2) adds the same column, and a database may have run that one first.
ALTER TABLE notification_preferences ADD COLUMN IF NOT EXISTS live boolean NOT NULL DEFAULT true;
