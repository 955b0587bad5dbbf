-- Revoking a family (refresh-token reuse, a replayed code, RFC 7009 revocation) needs only
-- its live refresh token: rotated ones can no longer be used, and a reuse of one is still
-- caught by its rotated_at. Indexed by family, every rotated token stayed in the index
-- for the thirty days it is kept, and each rotation added an entry beside its family's
-- earlier ones, one more page written per rotation. Live tokens only: a rotation moves
-- the family's one entry, and the index stays the size of the live families.
-- A family's access tokens are found among those of its client and user
-- (access_tokens_client_user): an index of their own cost each rotation one more page.
-- On a large database, build the new index beforehand without blocking writes (this
-- migration then skips it), and drop the old ones the same way to avoid even their brief
-- exclusive locks:
--   CREATE INDEX CONCURRENTLY refresh_tokens_live_family ON refresh_tokens (family_id)
--       WHERE rotated_at IS NULL AND revoked = 0;
--   DROP INDEX CONCURRENTLY refresh_tokens_family;
--   DROP INDEX CONCURRENTLY access_tokens_family;
-- A CREATE INDEX CONCURRENTLY that failed leaves an invalid index under its name, which
-- this migration would then skip: check that pg_index.indisvalid is true for it first.
CREATE INDEX IF NOT EXISTS refresh_tokens_live_family ON refresh_tokens (family_id) WHERE rotated_at IS NULL AND revoked = 0;
DROP INDEX IF EXISTS refresh_tokens_family;
DROP INDEX IF EXISTS access_tokens_family;
