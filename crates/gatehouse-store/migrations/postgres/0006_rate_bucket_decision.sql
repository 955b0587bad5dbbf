-- Whether the bucket's last request was let through: with it, one INSERT … ON CONFLICT
-- DO UPDATE … RETURNING both counts a request and tells the caller the decision, so a
-- shared bucket's row is locked for one statement rather than a whole transaction.
ALTER TABLE rate_buckets ADD COLUMN allowed BIGINT NOT NULL DEFAULT 1;
