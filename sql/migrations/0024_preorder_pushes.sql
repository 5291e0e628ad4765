-- Chat pushes for pre-order threads too (0020_conversations.sql): a chat is named by an order's id
-- or, before the order exists, by its application's id (the order then takes that id). The
-- recipient of a message is the other party of the order, else of the application (the applicant
-- and the gig's owner). Replaces the function of 0023_chat_wal.sql; its trigger stays.
CREATE OR REPLACE FUNCTION gigwire_chat_recipient(chat_id uuid, sender_id uuid) RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(
        (SELECT CASE WHEN o.client_id = sender_id THEN o.doer_id ELSE o.client_id END
           FROM orders o WHERE o.id = chat_id),
        (SELECT CASE WHEN g.client_id = sender_id THEN a.doer_id ELSE g.client_id END
           FROM applications a JOIN gigs g ON g.id = a.gig_id WHERE a.id = chat_id)
    )
$$;

CREATE OR REPLACE FUNCTION gigwire_queue_chat_pushes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO chat_push_pending AS p (order_id, user_id, message_id, seq, unread)
    SELECT DISTINCT ON (r.order_id, r.recipient)
           r.order_id, r.recipient, r.id, r.seq, count(*) OVER (PARTITION BY r.order_id, r.recipient)
      FROM (SELECT n.order_id, n.id, n.seq, n.sender_id, gigwire_chat_recipient(n.order_id, n.sender_id) AS recipient
              FROM new_messages n) r
     WHERE r.recipient IS NOT NULL AND r.recipient <> r.sender_id
     ORDER BY r.order_id, r.recipient, r.seq DESC
    ON CONFLICT (order_id, user_id) DO UPDATE
       SET message_id = EXCLUDED.message_id, seq = EXCLUDED.seq, unread = p.unread + EXCLUDED.unread;
    IF FOUND THEN
        PERFORM pg_notify('gigwire_push', '');
    END IF;
    RETURN NULL;
END
$$;
