-- Signed device lists (protocol.md §12): each account's latest list, as the
-- identity key signed it, and the devices it names. While an account has a
-- list, only the devices it names are served to sealers and counted in the
-- coverage of new epochs; an account without one is served as before.

-- +goose Up

CREATE TABLE device_lists (
    user_id    BYTEA  PRIMARY KEY REFERENCES users (id),
    seq        BIGINT NOT NULL,             -- only goes up, except that an identity reset deletes the row
    encoded    BYTEA  NOT NULL,             -- the signed list, never parsed by the store
    updated_at BIGINT NOT NULL
);

CREATE TABLE device_list_entries (
    user_id   BYTEA NOT NULL REFERENCES device_lists (user_id),
    device_id BYTEA NOT NULL REFERENCES devices (id),
    PRIMARY KEY (user_id, device_id)
);

-- +goose Down

DROP TABLE device_list_entries;
DROP TABLE device_lists;
