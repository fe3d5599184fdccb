-- sandi's store schema, version 1. One file for SQLite and PostgreSQL: see
-- migrations.go for the subset of SQL it keeps to. Identifiers are 16-byte
-- BYTEA values; times are Unix milliseconds (BIGINT).

-- +goose Up

CREATE TABLE users (
    id            BYTEA  PRIMARY KEY,
    username      TEXT   NOT NULL UNIQUE,   -- canonical lower-case form
    password_hash TEXT   NOT NULL,
    identity_key  BYTEA,                    -- NULL until the first bundle; see PutBundle
    created_at    BIGINT NOT NULL
);

CREATE TABLE devices (
    id            BYTEA   PRIMARY KEY,
    user_id       BYTEA   NOT NULL REFERENCES users (id),
    name          TEXT    NOT NULL,
    signed_prekey BYTEA,                    -- NULL until the first bundle
    last_resort   BYTEA,
    created_at    BIGINT  NOT NULL,
    revoked       BOOLEAN NOT NULL DEFAULT FALSE,
    prekeys_low   BOOLEAN NOT NULL DEFAULT FALSE, -- a prekeys_low event was sent since the last upload
    CHECK ((signed_prekey IS NULL) = (last_resort IS NULL))
);
CREATE INDEX devices_user ON devices (user_id);

CREATE TABLE tokens (
    hash      BYTEA PRIMARY KEY,            -- hash of the bearer token, never the token
    device_id BYTEA NOT NULL REFERENCES devices (id)
);
CREATE INDEX tokens_device ON tokens (device_id);

CREATE TABLE one_time_keys (
    device_id BYTEA  NOT NULL REFERENCES devices (id),
    key_id    BIGINT NOT NULL,
    encoded   BYTEA  NOT NULL,
    PRIMARY KEY (device_id, key_id)
);

CREATE TABLE conversations (
    id                BYTEA   PRIMARY KEY,
    created_at        BIGINT  NOT NULL,
    chain_seq         BIGINT  NOT NULL,     -- seq of the last membership record
    chain_head        BYTEA   NOT NULL,     -- its hash
    epoch             BIGINT  NOT NULL,     -- current epoch
    epoch_started_at  BIGINT  NOT NULL,
    messages_in_epoch BIGINT  NOT NULL DEFAULT 0,
    rotation_required BOOLEAN NOT NULL DEFAULT FALSE,
    rotation_reason   TEXT    NOT NULL DEFAULT '',
    last_seq          BIGINT  NOT NULL DEFAULT 0 -- seq of the last message: the next one is last_seq + 1
);

CREATE TABLE records (
    conversation_id BYTEA  NOT NULL REFERENCES conversations (id),
    seq             BIGINT NOT NULL,
    encoded         BYTEA  NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);

-- One row per span of membership: a user removed and added again has two.
-- The user sees the conversation-wide events with
-- joined_event_id <= id <= left_event_id (no upper bound while current).
CREATE TABLE members (
    conversation_id BYTEA   NOT NULL REFERENCES conversations (id),
    user_id         BYTEA   NOT NULL REFERENCES users (id),
    role            INTEGER NOT NULL,
    joined_event_id BIGINT  NOT NULL,
    left_event_id   BIGINT,
    PRIMARY KEY (conversation_id, user_id, joined_event_id)
);
CREATE UNIQUE INDEX members_current ON members (conversation_id, user_id) WHERE left_event_id IS NULL;
CREATE INDEX members_user ON members (user_id);

-- Exactly one session per (conversation, epoch).
CREATE TABLE sessions (
    conversation_id BYTEA  NOT NULL REFERENCES conversations (id),
    epoch           BIGINT NOT NULL,
    chain_seq       BIGINT NOT NULL,
    creator         BYTEA  NOT NULL REFERENCES devices (id),
    encoded         BYTEA  NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, epoch)
);

-- A session key cannot exist without its initiator ephemeral key (the HPKE
-- enc) and its ciphertext: NOT NULL and non-empty (DESIGN.md §1, defect 3).
CREATE TABLE session_keys (
    conversation_id         BYTEA  NOT NULL,
    epoch                   BIGINT NOT NULL,
    device_id               BYTEA  NOT NULL REFERENCES devices (id),
    user_id                 BYTEA  NOT NULL REFERENCES users (id),
    prekey_id               BIGINT NOT NULL,
    initiator_ephemeral_key BYTEA  NOT NULL CHECK (length(initiator_ephemeral_key) > 0),
    ciphertext              BYTEA  NOT NULL CHECK (length(ciphertext) > 0),
    PRIMARY KEY (conversation_id, epoch, device_id),
    FOREIGN KEY (conversation_id, epoch) REFERENCES sessions (conversation_id, epoch)
);
CREATE INDEX session_keys_device ON session_keys (device_id);

CREATE TABLE messages (
    conversation_id BYTEA  NOT NULL REFERENCES conversations (id),
    seq             BIGINT NOT NULL,        -- gap-free per conversation, from conversations.last_seq
    sender_device   BYTEA  NOT NULL REFERENCES devices (id),
    sender_user     BYTEA  NOT NULL REFERENCES users (id),
    client_id       TEXT   NOT NULL,
    epoch           BIGINT NOT NULL,
    envelope        BYTEA  NOT NULL,
    created_at      BIGINT NOT NULL,
    event_id        BIGINT NOT NULL,        -- its event in the sync stream
    PRIMARY KEY (conversation_id, seq),
    UNIQUE (sender_device, client_id)
);

-- The sync stream. An event is device-addressed (device_id set) or
-- conversation-wide (device_id NULL, conversation_id set). Ids come from
-- event_counter, never from a sequence: see below.
CREATE TABLE events (
    id              BIGINT PRIMARY KEY,
    kind            TEXT   NOT NULL,
    device_id       BYTEA,
    conversation_id BYTEA,
    user_id         BYTEA,
    seq             BIGINT NOT NULL DEFAULT 0,
    epoch           BIGINT NOT NULL DEFAULT 0,
    reason          TEXT   NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL,
    CHECK (device_id IS NOT NULL OR conversation_id IS NOT NULL)
);
CREATE INDEX events_device ON events (device_id, id) WHERE device_id IS NOT NULL;
CREATE INDEX events_conversation ON events (conversation_id, id) WHERE device_id IS NULL;

-- The last event id handed out. Every event-producing transaction advances
-- it with UPDATE … RETURNING, which holds the row's lock until commit, so
-- event ids increase in commit order: a reader that has seen id N never
-- later finds a newly committed id below N. A PostgreSQL sequence gives no
-- such guarantee (numbers are taken at insert, transactions commit in any
-- order) and a syncing reader would skip events.
CREATE TABLE event_counter (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    last_id BIGINT  NOT NULL
);
INSERT INTO event_counter (id, last_id) VALUES (1, 0);

-- +goose Down

DROP TABLE event_counter;
DROP TABLE events;
DROP TABLE messages;
DROP TABLE session_keys;
DROP TABLE sessions;
DROP TABLE members;
DROP TABLE records;
DROP TABLE conversations;
DROP TABLE one_time_keys;
DROP TABLE tokens;
DROP TABLE devices;
DROP TABLE users;
