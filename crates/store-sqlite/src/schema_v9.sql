-- The job runner: one row per job with its schedule, progress and lease.
CREATE TABLE jobs (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    tenant       TEXT REFERENCES tenants (id),
    every_ms     INTEGER NOT NULL,
    next_run_at  INTEGER NOT NULL,
    state        TEXT NOT NULL,
    done         INTEGER NOT NULL,
    total        INTEGER,
    cursor       TEXT,
    started_at   INTEGER,
    last_run_at  INTEGER,
    last_ok_at   INTEGER,
    last_error   TEXT,
    runs         INTEGER NOT NULL,
    lease_holder TEXT,
    lease_until  INTEGER NOT NULL
);

-- Blocked records by when they were blocked: what the purge reads.
CREATE INDEX records_blocked ON records (tenant, collection, blocked_at, id) WHERE state = 1;
