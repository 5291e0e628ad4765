-- The admin API (rest/admin_*.py): the append-only audit log of every admin action, bans, the ID
-- verification queue, safety reports, hidden gigs and replayed push dead letters.

-- Every admin action writes one row here in the transaction of the action itself, so an action
-- exists if and only if its audit row does. actor_id and target_id carry no foreign key: the log
-- outlives the users and rows it names. Rows are never changed or removed: the trigger below refuses
-- UPDATE, DELETE and TRUNCATE for every role that does not own the table's trigger (a superuser can
-- still drop the trigger; that is an operator's act outside the application).
CREATE TABLE admin_audit (
    id           bigserial PRIMARY KEY,
    actor_id     uuid NOT NULL,
    action       text NOT NULL CHECK (action ~ '^[a-z_.]{2,60}$'),
    target_type  text NOT NULL CHECK (target_type ~ '^[a-z_]{2,40}$'),
    target_id    text NOT NULL CHECK (char_length(target_id) BETWEEN 1 AND 100),
    before       jsonb,
    after        jsonb,
    reason       text CHECK (reason IS NULL OR char_length(reason) <= 2000),
    at           timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX admin_audit_actor_idx ON admin_audit (actor_id, id DESC);
CREATE INDEX admin_audit_target_idx ON admin_audit (target_type, target_id, id DESC);

CREATE FUNCTION gigwire_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'admin_audit is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER admin_audit_no_update BEFORE UPDATE OR DELETE ON admin_audit
    FOR EACH ROW EXECUTE FUNCTION gigwire_audit_append_only();
CREATE TRIGGER admin_audit_no_truncate BEFORE TRUNCATE ON admin_audit
    FOR EACH STATEMENT EXECUTE FUNCTION gigwire_audit_append_only();

-- A banned user is refused by every route and every realtime connection (rest/http.py,
-- hub/revoke.py standing); banning revokes every refresh-token family and ends live sessions.
ALTER TABLE users ADD COLUMN banned_at timestamptz;
ALTER TABLE users ADD COLUMN ban_reason text CHECK (ban_reason IS NULL OR char_length(ban_reason) <= 2000);

-- ID verification: a user submits an uploaded document (a media id); admins approve or reject.
-- document_media_id has no foreign key: the media table is another migration's (see
-- rest/id_verification.py, check_document).
CREATE TABLE id_verifications (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id            uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    document_media_id  uuid NOT NULL,
    status             text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected')),
    reason             text CHECK (reason IS NULL OR char_length(reason) <= 2000),
    decided_by         uuid,
    decided_at         timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'pending') = (decided_at IS NULL))
);
-- At most one pending submission per user.
CREATE UNIQUE INDEX id_verifications_pending_uniq ON id_verifications (user_id) WHERE status = 'pending';
CREATE INDEX id_verifications_status_idx ON id_verifications (status, created_at, id);

-- Safety reports by any user about a user, a gig or a chat message.
CREATE TABLE reports (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    reporter_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    target_type   text NOT NULL CHECK (target_type IN ('user', 'gig', 'message')),
    target_id     uuid NOT NULL,
    reason        text NOT NULL CHECK (reason ~ '^[a-z_]{2,40}$'),
    details       text CHECK (details IS NULL OR char_length(details) <= 2000),
    status        text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    action        text CHECK (action IS NULL OR action ~ '^[a-z_]{2,40}$'),
    note          text CHECK (note IS NULL OR char_length(note) <= 2000),
    resolved_by   uuid,
    resolved_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'open') = (resolved_at IS NULL))
);
-- One open report per reporter and target: a second is refused (409) until the first is resolved.
CREATE UNIQUE INDEX reports_open_uniq ON reports (reporter_id, target_type, target_id) WHERE status = 'open';
CREATE INDEX reports_status_idx ON reports (status, created_at, id);
CREATE INDEX reports_reporter_idx ON reports (reporter_id, created_at);

-- A hidden gig vanishes from listings, search and recommendations for everyone but its owner and
-- admins.
ALTER TABLE gigs ADD COLUMN hidden_at timestamptz;
ALTER TABLE gigs ADD COLUMN hidden_reason text CHECK (hidden_reason IS NULL OR char_length(hidden_reason) <= 2000);

-- A dead letter replayed by an admin (its push requeued as a new push_jobs row).
ALTER TABLE push_dead_letters ADD COLUMN replayed_at timestamptz;
ALTER TABLE push_dead_letters ADD COLUMN replay_job_id bigint;
