-- Notification preferences get their third channel: `live` (the NOTIFICATION frame on the user's
-- sessions) beside `in_app` (the inbox row; "inbox" on the wire) and `push`. IF NOT EXISTS because
-- 0009_feed.sql adds the same column on the feed branch: whichever runs first adds it.
ALTER TABLE notification_preferences ADD COLUMN IF NOT EXISTS live boolean NOT NULL DEFAULT true;
