-- gigwire chat: stored messages with a gapless per-order sequence, and per-user read marks.
-- `chat_sequences.last_seq` is bumped in the same statement that inserts a message: the row lock
-- serializes concurrent senders of one order (on any process), so seq is 1, 2, 3... with no gap,
-- commit order equals seq order, and a rolled-back insert gives its number back.

CREATE TABLE chat_sequences (
    order_id  uuid PRIMARY KEY REFERENCES orders (id) ON DELETE CASCADE,
    last_seq  bigint NOT NULL CHECK (last_seq >= 0)
);

CREATE TABLE messages (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    order_id       uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    seq            bigint NOT NULL CHECK (seq >= 1),
    sender_id      uuid NOT NULL REFERENCES users (id),
    text           text NOT NULL DEFAULT '' CHECK (char_length(text) <= 4000),
    attachments    jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(attachments) = 'array'),
    client_msg_id  text CHECK (client_msg_id IS NULL OR char_length(client_msg_id) BETWEEN 1 AND 64),
    -- clock_timestamp(): the moment of the insert, not of the transaction's start.
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (order_id, seq),
    UNIQUE (order_id, sender_id, client_msg_id)
);

CREATE TABLE message_reads (
    order_id       uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    user_id        uuid NOT NULL REFERENCES users (id),
    last_read_seq  bigint NOT NULL CHECK (last_read_seq >= 0),
    message_id     uuid REFERENCES messages (id) ON DELETE SET NULL,
    read_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, user_id)
);
CREATE INDEX message_reads_user_idx ON message_reads (user_id);
-- Unread counts per order for a user: messages after the mark from the other party.
CREATE INDEX messages_order_sender_idx ON messages (order_id, sender_id, seq);
