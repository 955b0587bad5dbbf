-- A new client secret, kept for one look after the POST that made it (POST-redirect-GET):
-- sealed with a key derived from the browser's session cookie, which the database never
-- holds, so a dump yields no secret. Taken (deleted) on first view; minutes to live.
CREATE TABLE secret_notes (
    session_hash TEXT NOT NULL REFERENCES sessions (id_hash) ON DELETE CASCADE,
    client_id    TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    sealed       TEXT NOT NULL,
    expires_at   BIGINT NOT NULL,
    PRIMARY KEY (session_hash, client_id)
);
CREATE INDEX secret_notes_expires ON secret_notes (expires_at);
