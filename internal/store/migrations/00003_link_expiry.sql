-- Device linking (protocol.md §11): a link request carries the tag that
-- only the holder of the link code can make, and expires. A request made
-- before this migration has no tag and expires_at 0: it counts as expired,
-- and its device starts linking again.

-- +goose Up

ALTER TABLE link_requests ADD COLUMN tag BYTEA;
ALTER TABLE link_requests ADD COLUMN expires_at BIGINT NOT NULL DEFAULT 0;

-- +goose Down

ALTER TABLE link_requests DROP COLUMN expires_at;
ALTER TABLE link_requests DROP COLUMN tag;
