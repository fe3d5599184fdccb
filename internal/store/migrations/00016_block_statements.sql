-- Signed block statements (protocol.md §16.2): per account and other
-- account, the newest statement the account's identity key signed that it
-- blocks the other account, or no longer does. The blocks table keeps
-- its meaning (the blocks the server enforces, as nodes of the previous
-- release read it): a block statement comes with a blocks row, an unblock
-- statement with none. An identity reset deletes the account's
-- statements (signed by the replaced key).

-- +goose Up

CREATE TABLE block_statements (
    user_id   BYTEA   NOT NULL REFERENCES users (id),
    other_id  BYTEA   NOT NULL REFERENCES users (id),
    blocked   BOOLEAN NOT NULL,
    at        BIGINT  NOT NULL,
    statement BYTEA   NOT NULL,
    PRIMARY KEY (user_id, other_id)
);

-- +goose Down

DROP TABLE block_statements;
