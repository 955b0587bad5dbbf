-- The demo platform API's data, and shared rate-limit buckets. Keep in step with
-- ../sqlite/0002_platform.sql.

CREATE TABLE api_channels (
    user_id             TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    status              TEXT NOT NULL,
    game                TEXT NOT NULL,
    -- Demo platform data, not a Gatehouse credential: the API shows it to holders of
    -- channel_read, as Twitch's kraken API did.
    stream_key          TEXT NOT NULL,
    last_commercial_at  BIGINT,
    updated_at          BIGINT NOT NULL
);

-- follow, block and subscription edges between users.
CREATE TABLE api_relations (
    kind           TEXT NOT NULL,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    target_user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (kind, user_id, target_user_id)
);
CREATE INDEX api_relations_target ON api_relations (kind, target_user_id);

-- Token buckets, in thousandths of a request, so that instances share one budget.
CREATE TABLE rate_buckets (
    bucket     TEXT PRIMARY KEY,
    level      BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
