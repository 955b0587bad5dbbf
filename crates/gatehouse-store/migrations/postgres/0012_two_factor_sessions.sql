-- Two-factor sign-in and the security page's list of sessions.
-- Keep in step with ../sqlite/0012_two_factor_sessions.sql.

-- What the security page shows of each signed-in browser. last_seen is written at most
-- once a minute per session, so page views do not each become a write.
ALTER TABLE sessions ADD COLUMN user_agent TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN address TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN last_seen BIGINT NOT NULL DEFAULT 0;
CREATE INDEX sessions_user ON sessions (user_id);

-- The TOTP secret, sealed (AES-256-GCM under a key derived from the key encryption
-- key), and the newest time step whose code was accepted: each code works once.
CREATE TABLE two_factor (
    user_id       TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret_sealed TEXT NOT NULL,
    last_step     BIGINT NOT NULL,
    enabled_at    BIGINT NOT NULL
);

-- Single-use recovery codes, as SHA-256 digests.
CREATE TABLE recovery_codes (
    user_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_at   BIGINT,
    PRIMARY KEY (user_id, code_hash)
);
