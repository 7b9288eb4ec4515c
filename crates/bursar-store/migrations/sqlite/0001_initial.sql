-- Bursar initial schema (SQLite). Money columns are integer nano-USD (*_nano), timestamps are
-- integer milliseconds since the Unix epoch (*_at, *_time), lists and maps are JSON text, and
-- flags are 0/1 integers. Keep in step with ../postgres/0001_initial.sql.

CREATE TABLE budgets (
    budget_id             TEXT PRIMARY KEY NOT NULL,
    max_budget_nano       INTEGER,
    soft_budget_nano      INTEGER,
    max_parallel_requests INTEGER,
    tpm_limit             INTEGER,
    rpm_limit             INTEGER,
    model_max_budget      TEXT,
    budget_duration       TEXT,
    budget_reset_at       INTEGER,
    allowed_models        TEXT NOT NULL DEFAULT '[]',
    created_at            INTEGER NOT NULL,
    created_by            TEXT NOT NULL DEFAULT '',
    updated_at            INTEGER NOT NULL,
    updated_by            TEXT NOT NULL DEFAULT ''
);
CREATE INDEX budgets_reset_idx ON budgets (budget_reset_at);

CREATE TABLE organizations (
    organization_id    TEXT PRIMARY KEY NOT NULL,
    organization_alias TEXT NOT NULL,
    budget_id          TEXT,
    models             TEXT NOT NULL DEFAULT '[]',
    metadata           TEXT NOT NULL DEFAULT '{}',
    spend_nano         INTEGER NOT NULL DEFAULT 0,
    model_spend        TEXT NOT NULL DEFAULT '{}',
    blocked            INTEGER NOT NULL DEFAULT 0,
    created_at         INTEGER NOT NULL,
    created_by         TEXT NOT NULL DEFAULT '',
    updated_at         INTEGER NOT NULL,
    updated_by         TEXT NOT NULL DEFAULT ''
);
CREATE INDEX organizations_alias_idx ON organizations (organization_alias);
CREATE INDEX organizations_created_idx ON organizations (created_at, organization_id);

CREATE TABLE users (
    user_id               TEXT PRIMARY KEY NOT NULL,
    user_alias            TEXT,
    user_email            TEXT,
    user_role             TEXT NOT NULL DEFAULT 'internal_user',
    sso_user_id           TEXT UNIQUE,
    organization_id       TEXT,
    max_budget_nano       INTEGER,
    soft_budget_nano      INTEGER,
    spend_nano            INTEGER NOT NULL DEFAULT 0,
    models                TEXT NOT NULL DEFAULT '[]',
    metadata              TEXT NOT NULL DEFAULT '{}',
    max_parallel_requests INTEGER,
    tpm_limit             INTEGER,
    rpm_limit             INTEGER,
    budget_duration       TEXT,
    budget_reset_at       INTEGER,
    model_max_budget      TEXT NOT NULL DEFAULT '{}',
    model_spend           TEXT NOT NULL DEFAULT '{}',
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL
);
CREATE INDEX users_email_idx ON users (lower(user_email));
CREATE INDEX users_org_idx ON users (organization_id, user_id);
CREATE INDEX users_role_idx ON users (user_role, user_id);
CREATE INDEX users_created_idx ON users (created_at, user_id);
CREATE INDEX users_reset_idx ON users (budget_reset_at);

CREATE TABLE teams (
    team_id                 TEXT PRIMARY KEY NOT NULL,
    team_alias              TEXT,
    organization_id         TEXT,
    metadata                TEXT NOT NULL DEFAULT '{}',
    max_budget_nano         INTEGER,
    soft_budget_nano        INTEGER,
    spend_nano              INTEGER NOT NULL DEFAULT 0,
    models                  TEXT NOT NULL DEFAULT '[]',
    max_parallel_requests   INTEGER,
    tpm_limit               INTEGER,
    rpm_limit               INTEGER,
    budget_duration         TEXT,
    budget_reset_at         INTEGER,
    blocked                 INTEGER NOT NULL DEFAULT 0,
    model_max_budget        TEXT NOT NULL DEFAULT '{}',
    model_spend             TEXT NOT NULL DEFAULT '{}',
    model_aliases           TEXT NOT NULL DEFAULT '{}',
    team_member_permissions TEXT NOT NULL DEFAULT '[]',
    created_at              INTEGER NOT NULL,
    updated_at              INTEGER NOT NULL
);
CREATE INDEX teams_org_idx ON teams (organization_id, team_id);
CREATE INDEX teams_alias_idx ON teams (team_alias);
CREATE INDEX teams_created_idx ON teams (created_at, team_id);
CREATE INDEX teams_reset_idx ON teams (budget_reset_at);

-- One row per (team, user): role, per-member budget and spend inside the team.
CREATE TABLE team_members (
    team_id          TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    role             TEXT NOT NULL DEFAULT 'user',
    budget_id        TEXT,
    spend_nano       INTEGER NOT NULL DEFAULT 0,
    total_spend_nano INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user_idx ON team_members (user_id, team_id);

CREATE TABLE org_members (
    organization_id TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    user_role       TEXT,
    budget_id       TEXT,
    spend_nano      INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX org_members_user_idx ON org_members (user_id, organization_id);

-- Virtual keys. `token` is the lower-case hex SHA-256 of the raw key; the raw key is never stored.
CREATE TABLE keys (
    token                 TEXT PRIMARY KEY NOT NULL,
    key_name              TEXT,
    key_alias             TEXT,
    user_id               TEXT,
    team_id               TEXT,
    organization_id       TEXT,
    budget_id             TEXT,
    models                TEXT NOT NULL DEFAULT '[]',
    aliases               TEXT NOT NULL DEFAULT '{}',
    metadata              TEXT NOT NULL DEFAULT '{}',
    permissions           TEXT NOT NULL DEFAULT '{}',
    allowed_routes        TEXT NOT NULL DEFAULT '[]',
    blocked               INTEGER NOT NULL DEFAULT 0,
    expires_at            INTEGER,
    max_budget_nano       INTEGER,
    soft_budget_nano      INTEGER,
    spend_nano            INTEGER NOT NULL DEFAULT 0,
    budget_duration       TEXT,
    budget_reset_at       INTEGER,
    max_parallel_requests INTEGER,
    tpm_limit             INTEGER,
    rpm_limit             INTEGER,
    model_max_budget      TEXT NOT NULL DEFAULT '{}',
    model_spend           TEXT NOT NULL DEFAULT '{}',
    rotation_count        INTEGER NOT NULL DEFAULT 0,
    created_at            INTEGER NOT NULL,
    created_by            TEXT,
    updated_at            INTEGER NOT NULL,
    updated_by            TEXT,
    last_active_at        INTEGER
);
CREATE INDEX keys_user_idx ON keys (user_id, token);
CREATE INDEX keys_team_idx ON keys (team_id, token);
CREATE INDEX keys_org_idx ON keys (organization_id, token);
CREATE INDEX keys_alias_idx ON keys (key_alias);
CREATE INDEX keys_created_idx ON keys (created_at, token);
CREATE INDEX keys_reset_idx ON keys (budget_reset_at);
CREATE INDEX keys_expires_idx ON keys (expires_at);

CREATE TABLE end_users (
    user_id              TEXT PRIMARY KEY NOT NULL,
    alias                TEXT,
    spend_nano           INTEGER NOT NULL DEFAULT 0,
    allowed_model_region TEXT,
    default_model        TEXT,
    budget_id            TEXT,
    blocked              INTEGER NOT NULL DEFAULT 0,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);
CREATE INDEX end_users_budget_idx ON end_users (budget_id);

-- One row per request; request_id makes ledger writes idempotent.
CREATE TABLE spend_logs (
    request_id            TEXT PRIMARY KEY NOT NULL,
    call_type             TEXT NOT NULL,
    api_key               TEXT NOT NULL DEFAULT '',
    spend_nano            INTEGER NOT NULL DEFAULT 0,
    prompt_tokens         INTEGER NOT NULL DEFAULT 0,
    completion_tokens     INTEGER NOT NULL DEFAULT 0,
    total_tokens          INTEGER NOT NULL DEFAULT 0,
    start_time            INTEGER NOT NULL,
    end_time              INTEGER NOT NULL,
    completion_start_time INTEGER,
    request_duration_ms   INTEGER,
    model                 TEXT NOT NULL DEFAULT '',
    model_id              TEXT NOT NULL DEFAULT '',
    model_group           TEXT NOT NULL DEFAULT '',
    custom_llm_provider   TEXT NOT NULL DEFAULT '',
    api_base              TEXT NOT NULL DEFAULT '',
    user_id               TEXT,
    team_id               TEXT,
    organization_id       TEXT,
    end_user              TEXT,
    request_tags          TEXT NOT NULL DEFAULT '[]',
    metadata              TEXT NOT NULL DEFAULT '{}',
    cache_hit             TEXT NOT NULL DEFAULT 'False',
    status                TEXT NOT NULL DEFAULT 'success',
    session_id            TEXT,
    requester_ip_address  TEXT
);
CREATE INDEX spend_logs_time_idx ON spend_logs (start_time, request_id);
CREATE INDEX spend_logs_key_idx ON spend_logs (api_key, start_time);
CREATE INDEX spend_logs_user_idx ON spend_logs (user_id, start_time);
CREATE INDEX spend_logs_team_idx ON spend_logs (team_id, start_time);
CREATE INDEX spend_logs_org_idx ON spend_logs (organization_id, start_time);
CREATE INDEX spend_logs_end_user_idx ON spend_logs (end_user, start_time);

-- Pre-aggregated daily activity for every entity kind (user, team, organization, end_user,
-- key, tag). Dimension columns are '' rather than NULL so the unique key upserts correctly.
CREATE TABLE daily_spend (
    entity_type                 TEXT NOT NULL,
    entity_id                   TEXT NOT NULL,
    date                        TEXT NOT NULL,
    api_key                     TEXT NOT NULL DEFAULT '',
    model                       TEXT NOT NULL DEFAULT '',
    model_group                 TEXT NOT NULL DEFAULT '',
    custom_llm_provider         TEXT NOT NULL DEFAULT '',
    endpoint                    TEXT NOT NULL DEFAULT '',
    prompt_tokens               INTEGER NOT NULL DEFAULT 0,
    completion_tokens           INTEGER NOT NULL DEFAULT 0,
    cache_read_input_tokens     INTEGER NOT NULL DEFAULT 0,
    cache_creation_input_tokens INTEGER NOT NULL DEFAULT 0,
    spend_nano                  INTEGER NOT NULL DEFAULT 0,
    api_requests                INTEGER NOT NULL DEFAULT 0,
    successful_requests         INTEGER NOT NULL DEFAULT 0,
    failed_requests             INTEGER NOT NULL DEFAULT 0,
    created_at                  INTEGER NOT NULL,
    updated_at                  INTEGER NOT NULL,
    PRIMARY KEY (entity_type, entity_id, date, api_key, model, model_group, custom_llm_provider, endpoint)
);
CREATE INDEX daily_spend_date_idx ON daily_spend (entity_type, date);

CREATE TABLE audit_log (
    id                 TEXT PRIMARY KEY NOT NULL,
    created_at         INTEGER NOT NULL,
    changed_by         TEXT NOT NULL DEFAULT '',
    changed_by_api_key TEXT NOT NULL DEFAULT '',
    action             TEXT NOT NULL,
    table_name         TEXT NOT NULL,
    object_id          TEXT NOT NULL,
    before_value       TEXT,
    updated_values     TEXT
);
CREATE INDEX audit_log_object_idx ON audit_log (table_name, object_id, created_at);
CREATE INDEX audit_log_time_idx ON audit_log (created_at, id);

-- Small operational settings (e.g. the instance's schema notes); never secrets.
CREATE TABLE settings (
    name       TEXT PRIMARY KEY NOT NULL,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
