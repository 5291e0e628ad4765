-- gigwire chat, cheaper to write: what a stored message costs in WAL (bench/README.md, "WAL per
-- chat message") came to about twice the message itself. Three changes cut it.
--
-- 1. Time-ordered message ids. A random uuid primary key puts each insert on a random leaf page of
--    messages_pkey, and the first change of a page after each checkpoint writes the whole 8 KiB
--    page to the WAL: on a large table that is most of the index once per checkpoint. A UUIDv7
--    (48 bits of Unix milliseconds, then random bits, RFC 9562) appends at the index's right edge.
--    Existing ids stay as they are; ids remain unguessable (74 random bits).
CREATE FUNCTION gigwire_uuid7() RETURNS uuid LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;
ALTER TABLE messages ALTER COLUMN id SET DEFAULT gigwire_uuid7();

-- 2. A message's order is checked through its chat counter. The foreign key to orders took a
--    KEY SHARE lock on the order's row for every message, one WAL record each; the counter row of
--    chat_sequences is already locked and updated by the statement that stores the message
--    (hub/chat.py), so checking against it costs nothing more. (0020_conversations.sql made a chat
--    able to precede its order: its id is an order's or an application's, so the counter no longer
--    references orders.)
INSERT INTO chat_sequences (order_id, last_seq)
SELECT order_id, max(seq) FROM messages GROUP BY order_id
ON CONFLICT (order_id) DO NOTHING;
ALTER TABLE messages DROP CONSTRAINT messages_order_id_fkey;
ALTER TABLE messages ADD CONSTRAINT messages_order_id_fkey
    FOREIGN KEY (order_id) REFERENCES chat_sequences (order_id) ON DELETE CASCADE;

-- 3. Chat pushes wait in an unlogged table, one row per (chat, recipient), instead of a push_jobs
--    row per message. Most chat messages are seen live and never pushed: the push sender
--    (workers/chat_push.py) takes these rows, drops those whose recipient watches the chat, and
--    turns the rest into push_jobs rows (logged, retried as before). Messages arriving before the
--    sender takes the row fold into it (`unread` counts them; the push shows the latest, which is
--    what the phone would show under the chat's collapse key anyway).
--    Unlogged: written without WAL, and emptied by PostgreSQL's crash recovery (not by a clean
--    restart). `chat_push_epoch` is emptied with it: the sender, finding it empty, pushes again
--    what was stored in the minutes before (docs/operations.md, "PostgreSQL crash").
DROP TRIGGER messages_queue_push ON messages;
DROP FUNCTION gigwire_queue_chat_push();

CREATE UNLOGGED TABLE chat_push_pending (
    order_id    uuid NOT NULL,
    user_id     uuid NOT NULL,
    message_id  uuid NOT NULL,
    seq         bigint NOT NULL,
    unread      integer NOT NULL CHECK (unread >= 1),
    queued_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, user_id)
) WITH (fillfactor = 70);

CREATE UNLOGGED TABLE chat_push_epoch (
    one         boolean PRIMARY KEY DEFAULT true CHECK (one),
    started_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO chat_push_epoch DEFAULT VALUES;

-- Once per statement (a chat batch is one statement): the newest message per chat and recipient,
-- folded into the waiting row. Batches of one chat commit in seq order (their counter row's lock),
-- so the newest row written is the newest message.
CREATE FUNCTION gigwire_queue_chat_pushes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO chat_push_pending AS p (order_id, user_id, message_id, seq, unread)
    SELECT DISTINCT ON (n.order_id, r.recipient)
           n.order_id, r.recipient, n.id, n.seq, count(*) OVER (PARTITION BY n.order_id, r.recipient)
      FROM new_messages n
      JOIN orders o ON o.id = n.order_id
     CROSS JOIN LATERAL (
           SELECT CASE WHEN o.client_id = n.sender_id THEN o.doer_id ELSE o.client_id END AS recipient
           ) r
     WHERE r.recipient <> n.sender_id
     ORDER BY n.order_id, r.recipient, n.seq DESC
    ON CONFLICT (order_id, user_id) DO UPDATE
       SET message_id = EXCLUDED.message_id, seq = EXCLUDED.seq, unread = p.unread + EXCLUDED.unread;
    IF FOUND THEN
        PERFORM pg_notify('gigwire_push', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER messages_queue_pushes AFTER INSERT ON messages
    REFERENCING NEW TABLE AS new_messages
    FOR EACH STATEMENT EXECUTE FUNCTION gigwire_queue_chat_pushes();
