-- gigwire sessions end when their right ends: logout, a revoked refresh-token family and a deleted
-- user are announced to every hub by the control event SESSION_REVOKED, through the outbox.
--
-- 0009_feed.sql (the user feed) adds the same two things; this migration makes sure they exist
-- whichever lands first, and changes nothing when 0009 already made them: it only widens the
-- outbox's event_type check when that check does not yet allow SESSION_REVOKED, and creates the
-- users delete trigger only when no trigger of that name exists.

DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_constraint
        WHERE conrelid = 'outbox'::regclass AND conname = 'outbox_event_type_check'
          AND pg_get_constraintdef(oid) LIKE '%SESSION_REVOKED%'
    ) THEN
        ALTER TABLE outbox DROP CONSTRAINT IF EXISTS outbox_event_type_check;
        ALTER TABLE outbox ADD CONSTRAINT outbox_event_type_check
            CHECK (event_type IN ('ORDER_UPDATE', 'NEW_APPLICATION', 'NOTIFICATION', 'SESSION_REVOKED'));
    END IF;
END
$$;

-- A user row that goes (deleted by an operator, or by account deletion) ends that user's sessions on
-- every hub: SESSION_REVOKED without a familyId (every login of the user). Same body as 0009's.
CREATE OR REPLACE FUNCTION gigwire_user_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox (event_type, channels, payload)
    VALUES ('SESSION_REVOKED', ARRAY['user:' || OLD.id::text],
            jsonb_build_object('userId', OLD.id::text, 'reason', 'account_deleted'));
    PERFORM pg_notify('gigwire_outbox', '');
    RETURN NULL;
END
$$;

DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_trigger WHERE tgrelid = 'users'::regclass AND tgname = 'users_gone'
    ) THEN
        CREATE TRIGGER users_gone AFTER DELETE ON users
            FOR EACH ROW EXECUTE FUNCTION gigwire_user_gone();
    END IF;
END
$$;
