-- Every condition the purge deletes by has an index, so each batch of 500 it takes is an
-- index range, not a scan of the whole table while the writer waits (with ten million
-- live tokens, one scan took seconds). Partial indexes: rows outside them (live tokens)
-- cost nothing to insert.
CREATE INDEX access_tokens_revoked ON access_tokens (token_hash) WHERE revoked = 1;
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX refresh_tokens_rotated ON refresh_tokens (rotated_at) WHERE rotated_at IS NOT NULL;
CREATE INDEX refresh_tokens_revoked ON refresh_tokens (token_hash) WHERE revoked = 1;
