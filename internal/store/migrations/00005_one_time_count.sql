-- Each device's number of stored one-time pre-keys, kept with the writes
-- that add or take keys, so that neither a claim nor an upload counts the
-- keys inside its write transaction (a device with many keys would make
-- that count slow, and with it every other write waiting for the lock).
-- The store caps it (store.ErrTooManyKeys).

-- +goose Up

ALTER TABLE devices ADD COLUMN one_time_count BIGINT NOT NULL DEFAULT 0;
UPDATE devices SET one_time_count = (SELECT COUNT(*) FROM one_time_keys k WHERE k.device_id = devices.id);

-- +goose Down

ALTER TABLE devices DROP COLUMN one_time_count;
