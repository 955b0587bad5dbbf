-- OpenID Connect signing keys, private halves sealed with AES-256-GCM.
-- Keep in step with ../sqlite/0004_signing_keys.sql.
CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    alg         TEXT NOT NULL,
    private_key TEXT NOT NULL,
    public_jwk  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT
);
