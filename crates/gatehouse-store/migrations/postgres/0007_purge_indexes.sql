-- Every condition the purge deletes tokens by has an index, so each batch of 500 it takes
-- is an index range, not a scan of the whole table while writers wait (with ten million
-- live tokens, one scan took seconds). Partial indexes: live tokens cost nothing extra
-- to insert.
-- Building them holds writes to the token tables. On a large database, build them
-- beforehand with CREATE INDEX CONCURRENTLY and the same names; IF NOT EXISTS then skips
-- them here. (CONCURRENTLY cannot run in this migration: it waits for the other
-- instances queued on the migration lock, which wait for it.)
CREATE INDEX IF NOT EXISTS access_tokens_revoked ON access_tokens (token_hash) WHERE revoked = 1;
CREATE INDEX IF NOT EXISTS refresh_tokens_expires ON refresh_tokens (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS refresh_tokens_rotated ON refresh_tokens (rotated_at) WHERE rotated_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS refresh_tokens_revoked ON refresh_tokens (token_hash) WHERE revoked = 1;
