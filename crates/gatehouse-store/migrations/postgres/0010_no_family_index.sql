-- A family's live refresh token is found among the live tokens of its client and user
-- (refresh_tokens_live, at most the refresh cap of them), as its access tokens already
-- are: the family index cost every rotation two more index writes. Dropping it takes a
-- brief exclusive lock; on a busy database run `DROP INDEX CONCURRENTLY
-- refresh_tokens_live_family` first, and this migration finds nothing to do.
-- Keep in step with ../sqlite/0010_no_family_index.sql.
DROP INDEX IF EXISTS refresh_tokens_live_family;
