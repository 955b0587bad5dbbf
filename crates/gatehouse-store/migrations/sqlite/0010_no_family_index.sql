-- A family's live refresh token is found among the live tokens of its client and user
-- (refresh_tokens_live, at most the refresh cap of them), as its access tokens already
-- are: the family index cost every rotation two more index writes (the old token's
-- entry out, the new one's in), about a fourteenth of the pages a commit writes.
-- Keep in step with ../postgres/0010_no_family_index.sql.
DROP INDEX IF EXISTS refresh_tokens_live_family;
