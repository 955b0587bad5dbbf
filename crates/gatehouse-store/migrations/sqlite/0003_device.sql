-- Device authorizations (RFC 8628). Keep in step with ../postgres/0003_device.sql.
CREATE TABLE device_authorizations (
    device_code_hash TEXT PRIMARY KEY,
    user_code_hash   TEXT NOT NULL,
    client_id        TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    scopes           TEXT NOT NULL,
    status           TEXT NOT NULL,
    user_id          TEXT REFERENCES users (id) ON DELETE CASCADE,
    auth_time        INTEGER,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    poll_interval    INTEGER NOT NULL,
    last_poll_at     INTEGER
);
CREATE UNIQUE INDEX device_authorizations_user_code ON device_authorizations (user_code_hash);
CREATE INDEX device_authorizations_expires ON device_authorizations (expires_at);
