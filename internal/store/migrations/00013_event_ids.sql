-- The event stream with several writers (docs/scaling.md). On PostgreSQL,
-- event ids come from the sequence event_ids once the database has been
-- switched to it; until then, and always on SQLite, from event_counter.
-- sequenced records the switch: while it is FALSE the counter hands out
-- the ids; once it is TRUE the counter's last_id is the last id it handed
-- out, and the store refuses any further change of the row (a trigger
-- that the store creates on PostgreSQL), so that a node of an older
-- release, which only knows the counter, fails to write instead of
-- writing ids out of order. The sequence and the trigger are
-- PostgreSQL's own and are created by the store when it opens, with the
-- switch of a freshly created database.

-- +goose Up

ALTER TABLE event_counter ADD COLUMN sequenced BOOLEAN NOT NULL DEFAULT FALSE;

-- +goose Down

ALTER TABLE event_counter DROP COLUMN sequenced;
