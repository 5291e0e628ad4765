-- Media: files users upload (avatars, ID documents, gig and chat attachments). The bytes live in the
-- media store (MEDIA_STORAGE_URL: local disk or S3-compatible) under the media id; this row is what
-- the API knows of them. Sniffed content type, size and (images) dimensions are the server's own,
-- never the client's.
CREATE TABLE media (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id     uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('avatar', 'id_document', 'gig_attachment', 'chat_attachment')),
    content_type text NOT NULL,
    size         bigint NOT NULL CHECK (size >= 0),
    width        integer CHECK (width > 0),
    height       integer CHECK (height > 0),
    sha256       text NOT NULL,
    -- A chat attachment belongs to the order it was first sent in: both parties may read it, and it
    -- cannot be sent in another order (hub/media_refs.py).
    order_id     uuid REFERENCES orders(id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX media_owner ON media (owner_id, created_at DESC);
CREATE INDEX media_order ON media (order_id) WHERE order_id IS NOT NULL;
