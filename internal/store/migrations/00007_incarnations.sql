-- The store's incarnations: a random id that names this history of the
-- database, one row per incarnation, oldest first. The store adds the
-- first row when it opens a database that has none; a restore (and a
-- backup, which is a database that can only ever be served after a
-- restore) adds the next one. base is the newest event id when the
-- incarnation began: events up to it are those of the previous
-- incarnation, events after it are new. Clients hold the id they last
-- saw and resynchronise when it changes.

-- +goose Up

CREATE TABLE incarnations (
    n          BIGINT PRIMARY KEY,          -- 1, 2, …: the order of the incarnations
    id         BYTEA  NOT NULL UNIQUE,      -- 16 random bytes
    base       BIGINT NOT NULL,             -- the newest event id when it began
    created_at BIGINT NOT NULL
);

-- +goose Down

DROP TABLE incarnations;
