-- The id of the answer the client received (`chatcmpl-…`), which LiteLLM reports as a spend
-- log's `request_id`. The row's own `request_id` stays Bursar's call id: it is the ledger's
-- idempotency key, and upstreams do not promise unique answer ids.
ALTER TABLE spend_logs ADD COLUMN response_id TEXT;
CREATE INDEX spend_logs_response_idx ON spend_logs (response_id);
