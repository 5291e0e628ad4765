-- Chat pushes are queued by the statement that stores a chat batch (hub/chat.py, `pushed`), no longer
-- by the statement trigger of 0023 / 0024. Measured per batch on PostgreSQL 15, the trigger cost more
-- CPU than the insert it followed (1.1 to 2.3 ms against 0.25 to 1.0: gigwire_chat_recipient is not
-- inlined, so each call plans its queries), and its pg_notify took the database-wide notify lock at
-- every commit, so the batches of concurrent processes committed (and flushed WAL) one at a time.
-- The push sender polls `chat_push_pending` instead of waiting for a NOTIFY (workers/push.py).
-- gigwire_chat_recipient stays: the recovery after a crash (workers/chat_push.py) uses it.
DROP TRIGGER messages_queue_pushes ON messages;
DROP FUNCTION gigwire_queue_chat_pushes();
