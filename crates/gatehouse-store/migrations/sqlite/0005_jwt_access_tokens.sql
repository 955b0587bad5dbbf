-- Per-client choice of RFC 9068 JWT access tokens.
ALTER TABLE clients ADD COLUMN jwt_access_tokens INTEGER NOT NULL DEFAULT 0;
