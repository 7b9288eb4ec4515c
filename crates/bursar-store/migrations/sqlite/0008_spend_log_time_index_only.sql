-- The spend-log table keeps LiteLLM's indexes: the request id (primary key) and the start
-- time. An index per key and per user cost every request two more B-tree inserts on the
-- data plane's hot path (a third of the ledger's write work), for the only reads that used
-- them: `/spend/logs` by key or user with no date range. Those now walk the time index from
-- the newest row and stop at their row limit; dated queries and the daily tables are as fast
-- as before.
DROP INDEX spend_logs_key_idx;
DROP INDEX spend_logs_user_idx;
