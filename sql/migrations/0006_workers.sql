-- gigwire workers: push devices, the notification inbox and its preferences, durable push jobs and
-- their dead letters. The outbox (0001) feeds push_jobs through workers/relay.py.

-- A phone or browser that can receive pushes. A token belongs to one user at a time: registering it
-- again under another user moves it (the phone changed hands or accounts).
CREATE TABLE devices (
    token       text PRIMARY KEY CHECK (char_length(token) BETWEEN 1 AND 4096),
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    platform    text NOT NULL CHECK (platform IN ('android', 'ios', 'web')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_user_idx ON devices (user_id);

-- The inbox: every NOTIFICATION event a user is meant to see in the app.
CREATE TABLE notifications (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type        text NOT NULL CHECK (type ~ '^[a-z_]{2,40}$'),
    title       text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    body        text NOT NULL CHECK (char_length(body) <= 2000),
    data        jsonb NOT NULL DEFAULT '{}',
    read_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notifications_user_idx ON notifications (user_id, created_at DESC, id DESC);
CREATE INDEX notifications_unread_idx ON notifications (user_id) WHERE read_at IS NULL;

-- Per user, per notification type: whether it goes to the in-app inbox and to push.
-- No row means both are on.
CREATE TABLE notification_preferences (
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type        text NOT NULL CHECK (type ~ '^[a-z_]{2,40}$'),
    in_app      boolean NOT NULL DEFAULT true,
    push        boolean NOT NULL DEFAULT true,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, type)
);

-- One push to one user (all of their devices), durable until sent, pruned or dead-lettered.
-- `tokens` NULL means every device the user has when it is sent; after a partial failure it holds
-- only the tokens still owed, so a retry never re-sends to a device that already got it.
CREATE TABLE push_jobs (
    id               bigserial PRIMARY KEY,
    user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type             text NOT NULL CHECK (type ~ '^[a-z_]{2,40}$'),
    title            text NOT NULL,
    body             text NOT NULL,
    data             jsonb NOT NULL DEFAULT '{}',
    collapse_key     text,
    priority         text NOT NULL DEFAULT 'high' CHECK (priority IN ('high', 'normal')),
    order_id         uuid,
    tokens           text[],
    outbox_id        bigint,
    attempts         integer NOT NULL DEFAULT 0,
    last_error       text,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    -- One job per user per outbox event, even if the relay runs a row twice.
    UNIQUE (outbox_id, user_id)
);
CREATE INDEX push_jobs_due_idx ON push_jobs (next_attempt_at, id);

-- Pushes that failed their last try; kept for inspection and manual replay.
CREATE TABLE push_dead_letters (
    id            bigserial PRIMARY KEY,
    job_id        bigint NOT NULL,
    user_id       uuid NOT NULL,
    type          text NOT NULL,
    title         text NOT NULL,
    body          text NOT NULL,
    data          jsonb NOT NULL,
    collapse_key  text,
    tokens        text[] NOT NULL,
    attempts      integer NOT NULL,
    error         text NOT NULL,
    created_at    timestamptz NOT NULL,
    failed_at     timestamptz NOT NULL DEFAULT now()
);

-- The timers' sweeps: submitted orders waiting for approval, unpaid orders waiting for payment.
CREATE INDEX orders_timer_submitted_idx ON orders (submitted_at) WHERE status = 'submitted';
CREATE INDEX orders_timer_unpaid_idx ON orders (created_at) WHERE status = 'pending_payment';

-- Chat pushes: every stored chat message queues a push to the order's other participant, in the
-- message's own transaction (the hub stores messages and imports nothing of the workers). The
-- push sender drops it when that participant has a live session subscribed to the order's chat,
-- or has chat pushes turned off. One collapse key per order chat.
CREATE FUNCTION gigwire_queue_chat_push() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    recipient    uuid;
    sender_name  text;
    body         text;
    files        integer;
BEGIN
    SELECT CASE WHEN o.client_id = NEW.sender_id THEN o.doer_id ELSE o.client_id END
      INTO recipient FROM orders o WHERE o.id = NEW.order_id;
    IF recipient IS NULL OR recipient = NEW.sender_id THEN
        RETURN NULL;
    END IF;
    SELECT coalesce(u.name, 'New message') INTO sender_name FROM users u WHERE u.id = NEW.sender_id;
    body := btrim(NEW.text);
    IF body = '' THEN
        files := jsonb_array_length(NEW.attachments);
        body := CASE WHEN files <= 1 THEN 'Sent an attachment' ELSE 'Sent ' || files || ' attachments' END;
    END IF;
    INSERT INTO push_jobs (user_id, type, title, body, data, collapse_key, order_id)
    VALUES (
        recipient, 'chat_message', left(sender_name, 200), left(body, 1000),
        jsonb_build_object(
            'type', 'CHAT_MESSAGE', 'orderId', NEW.order_id::text, 'messageId', NEW.id::text,
            'seq', NEW.seq::text, 'senderId', NEW.sender_id::text
        ),
        'chat-' || NEW.order_id::text, NEW.order_id
    );
    PERFORM pg_notify('gigwire_push', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER messages_queue_push AFTER INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION gigwire_queue_chat_push();
