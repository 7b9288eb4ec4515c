-- Customers / end users (issue #5): the columns `/customer/*` stores beyond 0001's table.
ALTER TABLE end_users ADD COLUMN object_permission TEXT;
ALTER TABLE end_users ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';
