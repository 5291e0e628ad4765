-- gigwire chat, stored in batches (hub/chat_writer.py): keep only the indexes a query needs, so a
-- message costs less WAL. What each remaining index of `messages` is for:
--   messages_pkey (id)                          MESSAGE_READ finds a message by its id
--   messages_order_id_seq_key (order_id, seq)   replay, history, gap fill, unread counts (seq >
--                                               the read mark, other sender filtered in the scan)
--   messages_client_msg_key (order_id, sender_id, client_msg_id), only where a clientMsgId is
--                                               given: resends answered with the first message
-- Dropped: messages_order_sender_idx (order_id, sender_id, seq), which only the unread count used;
-- the (order_id, seq) range scan it does instead reads the same rows.
DROP INDEX messages_order_sender_idx;
ALTER TABLE messages DROP CONSTRAINT messages_order_id_sender_id_client_msg_id_key;
CREATE UNIQUE INDEX messages_client_msg_key ON messages (order_id, sender_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;
