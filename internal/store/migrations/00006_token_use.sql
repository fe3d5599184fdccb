-- Token use: when each bearer token was last seen, so that the server can
-- expire tokens left unused. The server records a use at most once an hour
-- per token; 0 is a token from before this column (its next use records it).

-- +goose Up

ALTER TABLE tokens ADD COLUMN last_used BIGINT NOT NULL DEFAULT 0;

-- +goose Down

ALTER TABLE tokens DROP COLUMN last_used;
