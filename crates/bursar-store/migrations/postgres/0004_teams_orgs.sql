-- Teams and organizations (issue #4): the team columns LiteLLM keeps outside metadata, and the
-- archive of deleted teams that `/v2/team/list?status=deleted` reads.
ALTER TABLE teams ADD COLUMN object_permission TEXT;
ALTER TABLE teams ADD COLUMN router_settings TEXT NOT NULL DEFAULT '{}';
ALTER TABLE teams ADD COLUMN access_group_ids TEXT NOT NULL DEFAULT '[]';
ALTER TABLE organizations ADD COLUMN object_permission TEXT;

-- A deleted team, as it was (JSON of the API object), with who deleted it and when.
CREATE TABLE deleted_teams (
    id                 TEXT PRIMARY KEY NOT NULL,
    team_id            TEXT NOT NULL,
    team_alias         TEXT,
    organization_id    TEXT,
    data               TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    deleted_at         BIGINT NOT NULL,
    deleted_by         TEXT,
    deleted_by_api_key TEXT
);
CREATE INDEX deleted_teams_team_idx ON deleted_teams (team_id);
CREATE INDEX deleted_teams_time_idx ON deleted_teams (deleted_at, id);
