-- Tokens issued from an authorization code now carry the code's key as their family id,
-- and a replayed code revokes its tokens by family. The code indexes cost every token
-- (and every refresh rotation) two more index entries, on pages of their own.
DROP INDEX IF EXISTS access_tokens_code;
DROP INDEX IF EXISTS refresh_tokens_code;
