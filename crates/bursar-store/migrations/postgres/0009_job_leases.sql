-- Leases for periodic jobs (budget resets): of several gateways on one database, only the
-- lease holder runs a job; another takes over when a lease is not renewed in time.
CREATE TABLE job_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
