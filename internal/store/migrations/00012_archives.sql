-- Account archives: a history transfer to a newly linked device, or the
-- account's encrypted backup (protocol.md §15). The ciphertext is an
-- object of the blob store (internal/blob) under the archive's id; this row
-- binds it to one account, whose devices alone may fetch it. An account has
-- at most one backup and a few transfers; a new one replaces the oldest.

-- +goose Up

CREATE TABLE archives (
    id         TEXT    PRIMARY KEY,                      -- 32 lower-case hex digits, random
    user_id    BYTEA   NOT NULL REFERENCES users (id),
    kind       TEXT    NOT NULL CHECK (kind IN ('backup', 'transfer')),
    size       BIGINT  NOT NULL CHECK (size > 0),        -- ciphertext bytes
    created_at BIGINT  NOT NULL
);
CREATE INDEX archives_user ON archives (user_id, kind, created_at);

-- +goose Down

DROP TABLE archives;
