-- Attachment blobs: ciphertext kept in the blob store (internal/blob), one
-- row each here. A blob is bound at upload to one conversation and one
-- account; it is uploaded in parts, completed (only then served), shared
-- by the messages that reference it, and collected when it expires
-- unreferenced or its messages are gone.
--
-- Collection is crash-safe in two steps: the row is first marked deleted
-- (a tombstone, never served), then the object is deleted from the blob
-- store, then the row. A crash between them leaves a tombstone whose
-- object the next collection deletes again.

-- +goose Up

CREATE TABLE blobs (
    id              TEXT    PRIMARY KEY,     -- 32 lower-case hex digits, random
    conversation_id BYTEA   NOT NULL REFERENCES conversations (id),
    user_id         BYTEA   NOT NULL REFERENCES users (id),   -- the uploading account
    device_id       BYTEA   NOT NULL REFERENCES devices (id), -- the device that began the upload
    size            BIGINT  NOT NULL CHECK (size > 0),        -- ciphertext bytes
    parts           INTEGER NOT NULL CHECK (parts > 0),
    received        BYTEA   NOT NULL,        -- bit n (byte n/8, bit n%8) set: part n is durable
    state           TEXT    NOT NULL DEFAULT '', -- the blob store's upload state
    complete        BOOLEAN NOT NULL DEFAULT FALSE,
    referenced      BOOLEAN NOT NULL DEFAULT FALSE, -- a message referenced it
    deleted         BOOLEAN NOT NULL DEFAULT FALSE, -- a tombstone: its object is being deleted
    created_at      BIGINT  NOT NULL,
    expires_at      BIGINT  NOT NULL,        -- unreferenced: collected from then on
    completed_at    BIGINT
);
CREATE INDEX blobs_expiry ON blobs (expires_at) WHERE NOT referenced AND NOT deleted;
CREATE INDEX blobs_deleted ON blobs (id) WHERE deleted;
CREATE INDEX blobs_referenced ON blobs (id) WHERE referenced AND NOT deleted;

-- The messages that reference a blob. No foreign key to messages: a
-- message that is deleted leaves its references, and collection deletes
-- the blobs none of whose messages remain.
CREATE TABLE blob_refs (
    blob_id         TEXT   NOT NULL REFERENCES blobs (id),
    conversation_id BYTEA  NOT NULL,
    seq             BIGINT NOT NULL,
    PRIMARY KEY (blob_id, conversation_id, seq)
);
CREATE INDEX blob_refs_message ON blob_refs (conversation_id, seq);

-- Per account: the bytes of its live blobs (not deleted) and its uploads
-- not completed, kept with the blobs' writes so that the quota is checked
-- without summing rows.
CREATE TABLE blob_usage (
    user_id      BYTEA   PRIMARY KEY REFERENCES users (id),
    bytes        BIGINT  NOT NULL,
    open_uploads INTEGER NOT NULL
);

-- +goose Down

DROP TABLE blob_usage;
DROP TABLE blob_refs;
DROP TABLE blobs;
