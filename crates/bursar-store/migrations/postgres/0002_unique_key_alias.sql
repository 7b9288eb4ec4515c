-- Key aliases are unique across all keys (LiteLLM enforces it in application code only, which
-- races). NULL aliases stay allowed any number of times.
DROP INDEX keys_alias_idx;
CREATE UNIQUE INDEX keys_alias_key ON keys (key_alias);
