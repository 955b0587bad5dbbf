-- Gatehouse schema, SQLite. Keep in step with ../postgres/0001_init.sql: a test checks
-- that both backends hold the same migration versions.
-- Every credential column holds a hex SHA-256 digest, never the credential itself.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    login         TEXT NOT NULL,
    email         TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX users_login_unique ON users (lower(login));

CREATE TABLE clients (
    id                         TEXT PRIMARY KEY,
    name                       TEXT NOT NULL,
    owner_user_id              TEXT NOT NULL REFERENCES users (id),
    category                   TEXT NOT NULL,
    kind                       TEXT NOT NULL,
    allow_implicit             INTEGER NOT NULL,
    redirect_uris              TEXT NOT NULL,
    secret_hash                TEXT,
    previous_secret_hash       TEXT,
    previous_secret_expires_at INTEGER,
    created_at                 INTEGER NOT NULL
);
CREATE UNIQUE INDEX clients_name_unique ON clients (lower(name));
CREATE INDEX clients_owner ON clients (owner_user_id);

CREATE TABLE sessions (
    id_hash    TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    auth_time  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE authorization_codes (
    code_hash             TEXT PRIMARY KEY,
    client_id             TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id               TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    redirect_uri          TEXT NOT NULL,
    redirect_uri_given    INTEGER NOT NULL,
    scopes                TEXT NOT NULL,
    code_challenge        TEXT,
    code_challenge_method TEXT,
    nonce                 TEXT,
    auth_time             INTEGER NOT NULL,
    created_at            INTEGER NOT NULL,
    expires_at            INTEGER NOT NULL,
    used                  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX authorization_codes_expires ON authorization_codes (expires_at);

CREATE TABLE access_tokens (
    token_hash TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id    TEXT REFERENCES users (id) ON DELETE CASCADE,
    scopes     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    family_id  TEXT,
    code_hash  TEXT,
    revoked    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX access_tokens_expires ON access_tokens (expires_at);
CREATE INDEX access_tokens_family ON access_tokens (family_id) WHERE family_id IS NOT NULL;
CREATE INDEX access_tokens_code ON access_tokens (code_hash) WHERE code_hash IS NOT NULL;
CREATE INDEX access_tokens_client_user ON access_tokens (client_id, user_id);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family_id  TEXT NOT NULL,
    client_id  TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    scopes     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    rotated_at INTEGER,
    revoked    INTEGER NOT NULL DEFAULT 0,
    code_hash  TEXT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_code ON refresh_tokens (code_hash) WHERE code_hash IS NOT NULL;
-- The live tokens of a user, for the refresh-token caps.
CREATE INDEX refresh_tokens_live ON refresh_tokens (user_id, client_id, created_at)
    WHERE rotated_at IS NULL AND revoked = 0;

CREATE TABLE consents (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    scopes     TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
CREATE INDEX consents_client ON consents (client_id);
