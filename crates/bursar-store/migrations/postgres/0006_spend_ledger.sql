-- Spend ledger (issue #6): cache token counts and the endpoint on every spend-log row, response
-- time on the daily tables, and an index for per-key analytics.
ALTER TABLE spend_logs ADD COLUMN cache_read_input_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE spend_logs ADD COLUMN cache_creation_input_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE spend_logs ADD COLUMN endpoint TEXT NOT NULL DEFAULT '';
ALTER TABLE daily_spend ADD COLUMN total_response_time_ms BIGINT NOT NULL DEFAULT 0;
CREATE INDEX daily_spend_key_idx ON daily_spend (entity_type, api_key, date);
