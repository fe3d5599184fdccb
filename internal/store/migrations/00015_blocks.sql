-- Block lists and first contacts (protocol.md §16), signed device names. A user's block list
-- names the accounts whose new conversations and member additions naming
-- the user the server refuses. new_contacts records, per account, the
-- accounts it named in a conversation while sharing no conversation with
-- them, with the time: the server bounds how many such first contacts an
-- account makes in a window (rows older than the window are deleted as
-- the account makes new ones).

-- +goose Up

CREATE TABLE blocks (
    user_id    BYTEA  NOT NULL REFERENCES users (id),
    blocked_id BYTEA  NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, blocked_id)
);
CREATE INDEX blocks_blocked ON blocks (blocked_id);

CREATE TABLE new_contacts (
    user_id    BYTEA  NOT NULL REFERENCES users (id),
    contact_id BYTEA  NOT NULL REFERENCES users (id),
    at         BIGINT NOT NULL,
    PRIMARY KEY (user_id, contact_id)
);

-- A device's name as its account's identity key signed it (protocol.md
-- §12.5): the newest record and its seq; devices.name is then its name.
ALTER TABLE devices ADD COLUMN name_record BYTEA;
ALTER TABLE devices ADD COLUMN name_seq BIGINT NOT NULL DEFAULT 0;

-- +goose Down

ALTER TABLE devices DROP COLUMN name_seq;
ALTER TABLE devices DROP COLUMN name_record;
DROP TABLE new_contacts;
DROP TABLE blocks;
