-- Device authorizations (RFC 8628). Keep in step with ../sqlite/0003_device.sql.
CREATE TABLE device_authorizations (
    device_code_hash TEXT PRIMARY KEY,
    user_code_hash   TEXT NOT NULL,
    client_id        TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    scopes           TEXT NOT NULL,
    status           TEXT NOT NULL,
    user_id          TEXT REFERENCES users (id) ON DELETE CASCADE,
    auth_time        BIGINT,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    poll_interval    BIGINT NOT NULL,
    last_poll_at     BIGINT
);
CREATE UNIQUE INDEX device_authorizations_user_code ON device_authorizations (user_code_hash);
CREATE INDEX device_authorizations_expires ON device_authorizations (expires_at);
