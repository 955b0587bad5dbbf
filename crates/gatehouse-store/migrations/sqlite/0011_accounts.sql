-- Account lifecycle: verified emails, disabled accounts, the admin role, and the
-- single-use links mailed for verification and recovery. Keep in step with
-- ../postgres/0011_accounts.sql.

ALTER TABLE users ADD COLUMN email_verified INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN is_admin INTEGER NOT NULL DEFAULT 0;

-- Emails are unique ignoring case among verified addresses. Every existing address
-- starts unverified (none was ever proven), so this index cannot fail on a database
-- where two accounts already share one: each may verify it, and the first to follow
-- its link holds it. An unverified address is only a claim; sign-up cannot refuse it
-- without telling a stranger that the address has an account here.
CREATE UNIQUE INDEX users_verified_email_unique ON users (lower(email)) WHERE email_verified = 1;
-- Recovery finds accounts by address.
CREATE INDEX users_email ON users (lower(email));

CREATE TABLE links (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL,
    email      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
-- One live link per user and purpose: a new one replaces the old in one statement,
-- so two requests at once cannot both leave a working link.
CREATE UNIQUE INDEX links_user ON links (user_id, purpose);
CREATE INDEX links_expires ON links (expires_at);
