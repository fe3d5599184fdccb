-- Conversation state (protocol.md §7.6): the conversation's latest state
-- record (title, description, timer), encrypted by a member under one
-- epoch and signed by it. The server keeps the newest one as the clients
-- sent it, with the epoch it is encrypted under and its version (read
-- from the record's clear header), so that it can refuse an older version
-- and hand the current state to members and devices that join later.
-- NULL, 0, 0: no state yet (a conversation from before this column, or
-- one created without a title).

-- +goose Up

ALTER TABLE conversations ADD COLUMN state BYTEA;
ALTER TABLE conversations ADD COLUMN state_epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN state_version BIGINT NOT NULL DEFAULT 0;

-- +goose Down

ALTER TABLE conversations DROP COLUMN state_version;
ALTER TABLE conversations DROP COLUMN state_epoch;
ALTER TABLE conversations DROP COLUMN state;
