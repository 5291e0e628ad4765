-- gigwire conversations: pre-order chat threads and blocks between users.
--
-- A chat is named by its chat id: an order's id, or, before any order exists, the id of the
-- application it is about (the applicant and the gig's owner ask and answer there). The order opened
-- from an application takes the application's id as its own id (domain.orders.open_order), so a
-- pre-order thread simply continues as the order's chat: same chat id, same channel, same
-- gapless seq counter, same read marks. `chat_sequences` and `message_reads` therefore no longer
-- reference `orders`: their `order_id` column holds the chat id (an order's or an application's),
-- checked by the hub before anything is stored (hub/threads.py). `messages.order_id` references
-- `chat_sequences` (0023_chat_wal.sql replaces its foreign key to `orders`; applied in either order
-- with this file, the two leave that key to chat_sequences), so a message still needs its chat's
-- counter row, which the statement storing it writes.
ALTER TABLE chat_sequences DROP CONSTRAINT chat_sequences_order_id_fkey;
ALTER TABLE message_reads DROP CONSTRAINT message_reads_order_id_fkey;
-- A chat attachment is bound to the chat it was sent in (0017_media.sql): a pre-order thread's too.
ALTER TABLE media DROP CONSTRAINT media_order_id_fkey;

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
