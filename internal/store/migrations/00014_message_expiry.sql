-- Disappearing messages (protocol.md §13.10): a message sent in a
-- conversation whose timer is on carries its timer to the server beside
-- the envelope, and the server deletes the message once expires_at (its
-- own clock, Unix milliseconds: created_at + timer) has passed; its
-- attachment blobs then go with the blob collection. NULL: the message
-- does not expire (older rows, and every message sent with the timer off).

-- +goose Up

ALTER TABLE messages ADD COLUMN expires_at BIGINT;
CREATE INDEX messages_expiry ON messages (expires_at) WHERE expires_at IS NOT NULL;

-- +goose Down

DROP INDEX messages_expiry;
ALTER TABLE messages DROP COLUMN expires_at;
