-- Device linking (protocol.md §11): a new device's temporary public key,
-- and the identity seed sealed to it once another device confirmed it. The
-- server cannot open the sealed seed.

-- +goose Up

CREATE TABLE link_requests (
    device_id  BYTEA  PRIMARY KEY REFERENCES devices (id),
    user_id    BYTEA  NOT NULL REFERENCES users (id),
    public_key BYTEA  NOT NULL,
    sealed     BYTEA,                       -- NULL until approved
    created_at BIGINT NOT NULL
);
CREATE INDEX link_requests_user ON link_requests (user_id);

-- +goose Down

DROP TABLE link_requests;
