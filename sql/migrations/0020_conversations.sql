-- gigwire conversations: pre-order chat threads and blocks between users.
--
-- A chat is named by its chat id: an order's id, or, before any order exists, the id of the
-- application it is about (the applicant and the gig's owner ask and answer there). The order opened
-- from an application takes the application's id as its own id (domain.orders.open_order), so a
-- pre-order thread simply continues as the order's chat: same chat id, same channel, same
-- gapless seq counter, same read marks. `chat_sequences`, `messages` and `message_reads` therefore
-- no longer reference `orders`: their `order_id` column holds the chat id (an order's or an
-- application's), checked by the hub before anything is stored (hub/threads.py). Dropping the foreign
-- key also removes one index probe of `orders` from every stored message.
ALTER TABLE chat_sequences DROP CONSTRAINT chat_sequences_order_id_fkey;
ALTER TABLE messages DROP CONSTRAINT messages_order_id_fkey;
ALTER TABLE message_reads DROP CONSTRAINT message_reads_order_id_fkey;

-- A block: `blocker_id` blocked `blocked_id`. Either direction stops new pre-order messages and new
-- applications between the two (hub/threads.py, rest/applications.py); an order's chat keeps working.
CREATE TABLE user_blocks (
    blocker_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (blocker_id, blocked_id),
    CHECK (blocker_id <> blocked_id)
);
-- "Is either of these two blocking the other?" probes the primary key both ways; the reverse index
-- serves the block list of the blocked side (none today) and the cascade on user deletion.
CREATE INDEX user_blocks_blocked_idx ON user_blocks (blocked_id);

-- Pre-order threads of a gig's owner: applications to the owner's gigs (gigs_client_idx), then each
-- application's thread by chat id (chat_sequences' primary key). Nothing more is needed.

-- Chat pushes for pre-order threads too: the recipient is the order's other participant or, while
-- there is no order, the application's (its applicant or the gig's owner). The rest is 0006's body
-- unchanged; `order_id` of the push job is the chat id (push_jobs.order_id references nothing).
CREATE OR REPLACE FUNCTION gigwire_queue_chat_push() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    recipient    uuid;
    sender_name  text;
    body         text;
    files        integer;
BEGIN
    SELECT CASE WHEN o.client_id = NEW.sender_id THEN o.doer_id ELSE o.client_id END
      INTO recipient FROM orders o WHERE o.id = NEW.order_id;
    IF recipient IS NULL THEN
        SELECT CASE WHEN g.client_id = NEW.sender_id THEN a.doer_id ELSE g.client_id END
          INTO recipient FROM applications a JOIN gigs g ON g.id = a.gig_id WHERE a.id = NEW.order_id;
    END IF;
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
