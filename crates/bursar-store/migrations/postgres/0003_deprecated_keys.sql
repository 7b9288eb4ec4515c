-- Old secrets of rotated keys that stay valid for a grace period: `token` (old hash) resolves to
-- `active_token` until `revoke_at` (epoch ms).
CREATE TABLE deprecated_keys (
    token        TEXT PRIMARY KEY NOT NULL,
    active_token TEXT NOT NULL,
    revoke_at    BIGINT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX deprecated_keys_active_idx ON deprecated_keys (active_token);
CREATE INDEX deprecated_keys_revoke_idx ON deprecated_keys (revoke_at);
