-- Indexes for PurgeDevices (docs/operations.md, Limits): a revoked device
-- is deleted once nothing names it, and the two tables that name a device
-- without an index on that column get one, so that each test is an index
-- lookup. Building them reads the sessions and blobs tables once.

-- +goose Up

CREATE INDEX sessions_creator ON sessions (creator);
CREATE INDEX blobs_device ON blobs (device_id);

-- +goose Down

DROP INDEX blobs_device;
DROP INDEX sessions_creator;
