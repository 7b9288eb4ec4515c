-- Every spend-log row is written once per request on the data plane's hot path, so it keeps
-- only the indexes the routes need without a date range: request id (primary key), time, key
-- and user. Team, organization and end-user views read the daily tables; filtering the logs by
-- one of those walks the time index.
DROP INDEX spend_logs_team_idx;
DROP INDEX spend_logs_org_idx;
DROP INDEX spend_logs_end_user_idx;
