-- The security event log: sign-ins, secret changes, revocations, admin actions. No
-- foreign keys: the log outlives the accounts and applications it names, so it keeps
-- logins beside ids. Never a secret in any column.
CREATE TABLE events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    at              INTEGER NOT NULL,
    kind            TEXT NOT NULL,
    actor_user_id   TEXT,
    actor_login     TEXT,
    subject_user_id TEXT,
    subject_login   TEXT,
    client_id       TEXT,
    address         TEXT,
    user_agent      TEXT,
    detail          TEXT
);
-- The purge and time-ordered listings.
CREATE INDEX events_at ON events (at);
-- A user's own activity, and an application's.
CREATE INDEX events_actor ON events (actor_user_id, at);
CREATE INDEX events_subject ON events (subject_user_id, at);
CREATE INDEX events_client ON events (client_id, at);
