-- Every condition the purge deletes tokens by has an index, so each batch of 500 it takes
-- is an index range, not a scan of the whole table while writers wait (with ten million
-- live tokens, one scan took seconds). Partial indexes: live tokens cost nothing extra
-- to insert.
CREATE INDEX IF NOT EXISTS access_tokens_revoked ON access_tokens (token_hash) WHERE revoked = 1;
CREATE INDEX IF NOT EXISTS refresh_tokens_expires ON refresh_tokens (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS refresh_tokens_rotated ON refresh_tokens (rotated_at) WHERE rotated_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS refresh_tokens_revoked ON refresh_tokens (token_hash) WHERE revoked = 1;
